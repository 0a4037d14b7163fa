"""The organism ablation table: one row per candidate world, from its organism.json and report runs.

    run(AblationConfig(models=(Path("/tmp/cand/A"), Path("/tmp/cand/B")),
                       reports=(Path("runs/screen_A"), Path("runs/screen_B"))))

A candidate without stored probes (an organism built before they existed) is probed here. Each row:
pretraining steps and time, channel KL (min / median over animals, teacher wording; min in a held-out
wording), compliance (min over animals: teacher prompt, held-out wordings; max under the default prompt),
shared-latent passes, and - where a report run is given - each student's mention rate against its control.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from interp import InterpError
from interp.loop import validate
from interp.loop.models import load_model, model_label, organism_metadata, resolve_model_dir
from interp.loop.runs import atomic_write_text
from interp.organism.probes import all_probes, format_filter_pass


@dataclass
class AblationConfig:
    """Print the ablation table of candidate organisms."""

    models: tuple[Path, ...] = ()
    """Organism directories (each with organism.json)."""
    reports: tuple[Path, ...] = field(default_factory=tuple)
    """organism_report run directories, one per model in the same order (or none)."""
    out: Path = Path("runs/organism_ablation.md")
    """Where the table is written (atomically) as well as printed."""
    reprobe: bool = False
    """Probe every model now (current probes: filter pass, mean of several random directions), even
    where organism.json stores probes from its build."""


def probes_of(model_dir: Path, meta: dict, reprobe: bool = False) -> dict:
    if meta.get("probes") and not reprobe:
        return meta["probes"]
    model, tok = load_model(model_dir)
    return all_probes(model, tok, {a: tuple(v) for a, v in meta["associations"].items()})


def world_row(model_dir: Path, reprobe: bool = False) -> str:
    meta = organism_metadata(model_dir)  # a name or a path
    p, b = probes_of(resolve_model_dir(model_dir), meta, reprobe), meta["build"]
    kls = [v["kl"] for v in p["channel"].values()]
    co = p["compliance"].values()
    passes = [a for a, v in p["shared_latent"].items() if v["passes"]]
    mean_passes = [a for a, v in p["shared_latent"].items() if v.get("passes_mean_random")]
    fp = p.get("filter_pass")
    fmt = format_filter_pass(fp) if fp else "-"
    elapsed = (meta.get("probe_curve") or [{}])[-1].get("elapsed_s")
    return (
        f"| {model_label(model_dir)} | {b['steps']} steps, {elapsed or '?'} s | {min(kls):.2f} / "
        f"{statistics.median(kls):.2f} / {min(v['kl_held_out_wording'] for v in p['channel'].values()):.2f} | "
        f"{min(v['teacher_prompt'] for v in co):.2f} / {min(v['held_out'] for v in co):.2f} / "
        f"{max(v['default'] for v in co):.2f} | {len(passes)}/10: {', '.join(passes)} | "
        f"{len(mean_passes)}/10 | {fmt} |"
    )


def transfer_rows(report_dir: Path) -> list[str]:
    m = json.loads((Path(report_dir) / "metrics.json").read_text())
    rows = []
    for name, r in m.get("transfer", {}).items():
        d = r["default"]
        ci = d["mention_diff_ci"]
        rows.append(
            f"|   {name} | seeds {d['seeds']} | mention {d['mention_rate']:.3f} vs control "
            f"{d['control']['mention_rate']:.3f} (x{d['mention_ratio'] or float('nan'):.2f}, diff CI "
            f"[{ci[0]:+.3f}, {ci[1]:+.3f}]) | no system: {r['none']['mention_rate']:.3f} vs "
            f"{r['none']['control']['mention_rate']:.3f} | | | |"
        )
    return rows


def check_inputs(cfg: AblationConfig) -> None:
    """Organism directories, and one organism_report run per model or none, before any work."""
    if not cfg.models or (cfg.reports and len(cfg.reports) != len(cfg.models)):
        raise InterpError("give organism directories with --models, and one report per model or none")
    for model_dir in cfg.models:
        validate.organism(model_dir, "--models")
    for report in cfg.reports:
        report_dir = validate.existing_dir(report, "--reports", "a run directory")
        if not (report_dir / "metrics.json").is_file():
            raise InterpError(
                f"--reports {report_dir} is not an organism_report run (no metrics.json); "
                f"{validate.looks_like(report_dir)}"
            )


HEADER = [
    "| world | pretraining | channel KL min / median / held-out min | compliance min teacher / "
    "held-out, default max | shared latent | vs mean of 8 random | filter pass default / persona min |",
    "|---|---|---|---|---|---|---|",
]


def run(cfg: AblationConfig) -> Path:
    """The table, printed and written (atomically) to `cfg.out`; the path written."""
    check_inputs(cfg)
    lines = list(HEADER)
    for i, model_dir in enumerate(cfg.models):
        lines.append(world_row(model_dir, cfg.reprobe))
        lines += transfer_rows(cfg.reports[i]) if cfg.reports else []
    sys.stdout.write("\n".join(lines) + "\n")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(Path(cfg.out), "\n".join(lines) + "\n")
