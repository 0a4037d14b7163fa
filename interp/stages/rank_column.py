"""Claims 1 and 2 from finished students (no training): LoRA students at several ranks, and full-FT students,
against one reference, read by the claims' own rules on the mention rate and on P(trait).

    run(RankColumnConfig(
        students=("r4=runs/ladder/jobs/student-...-r4-...-t0", "r4=...", "r16@0.003=docs/.../r16-t1.result.json",
                  "full=runs/ladder/jobs/student-...-full-..."),
        reference=Path("runs/ladder/jobs/base-cat-2689e9f6"),
        out=Path("runs/claim1"),
    ))

Each entry of `students` is LABEL=PATH: LABEL is r<rank> or full, with @<lr> where PATH is a bare
result.json (a record) rather than a job directory whose config.json says the lr; entries with one label are
one group, pooled over its seeds. The run directory gets config.json, results.json (the rank sweep's summary
and the claims), report.md and the rank sweep's figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from interp import InterpError
from interp.loop.runs import atomic_write_json, atomic_write_text, run_directory
from interp.study.ladder_report import fraction_text, lift_text
from interp.study.plots.figures import rank_sweep_figure
from interp.study.plots.heatmaps import save_figures
from interp.study.rank_column import rank_column, read_groups, read_references
from interp.study.report import figure_markdown

FIGURE = "rank_sweep"
METRIC_NAMES = {"mention": "mention rate", "p_trait": "P(trait)"}
CLAIM_NAMES = {
    "inverted_u_in_rank": "1. inverted U in rank",
    "no_transfer_under_full_ft": "2. no transfer under full FT",
}
PANELS = (("mention_rate", "ci", "mention rate"), ("p_trait", "p_trait_ci", "P(trait)"))
"""The figure's rows: the two metrics the claims are read on."""


@dataclass
class FinishedStudentsConfig:
    """Students that finished elsewhere, grouped by label, and one reference; no training."""

    students: tuple[str, ...] = ()
    """LABEL=PATH per student: LABEL r<rank> or full (@<lr> for a bare result.json), PATH a finished
    student job directory or its result.json."""
    reference: tuple[Path, ...] = ()
    """The reference: the base job (directory or result.json), or the control students, one per seed."""
    out: Path | None = None
    """Run directory."""
    overwrite: bool = False
    """Replace an existing run directory."""
    png: bool = True
    """Also write the figure as PNG (needs a browser for kaleido)."""

    stage: ClassVar[str] = "rank_column"

    def __post_init__(self) -> None:
        missing = [f for f in ("students", "reference", "out") if not getattr(self, f)]
        if missing:
            raise InterpError(f"{self.stage} needs " + ", ".join("--" + m for m in missing))


@dataclass
class RankColumnConfig(FinishedStudentsConfig):
    """Claims 1 and 2 from finished student and reference jobs."""


def column_markdown(res: dict[str, Any], png: bool) -> str:
    """The groups as one table, then each claim's verdict under its rule on both metrics."""
    rows = [(f"LoRA r{r['rank']}", r) for r in res["rank_sweep"]] + [("full FT", r) for r in res["full_ft"]]
    table = [
        f"| {name} | {r['lr']:g} | {r['seeds']} | {r['p_trait']:.4f} | {lift_text(r['p_trait_diff'], r['p_trait_diff_ci'], 4)} | "
        f"{r['mention_rate']:.3f} | {lift_text(r['mention_diff'], r['mention_diff_ci'], 3)} | {r['final_loss']:.3f} |"
        for name, r in rows
    ]
    ref = res["control"]
    lines = [
        "# Claims 1 and 2 from finished students",
        "",
        f"Reference ({res['reference']}): {ref['seeds']} seed(s), P({res['trait']}) {ref['p_trait']:.4f}, mention rate "
        f"{ref['mention_rate']:.3f}. Lifts are over the reference, with 95% CIs over seeds and questions.",
        "",
        f"| student | lr | seeds | P({res['trait']}) | P({res['trait']}) lift | mention rate | mention-rate lift | final loss |",
        "|---|---|---|---|---|---|---|---|",
        *table,
        "",
    ]
    for metric, claims in res["claims"].items():
        lines += [f"## Read on the {METRIC_NAMES[metric]}", ""]
        if metric != "mention":
            lines += [
                f"Each rule below reads the {METRIC_NAMES[metric]} lift where it says mention-rate lift.",
                "",
            ]
        digits = 3 if metric == "mention" else 4
        gaps = res["rank_gaps"][metric]
        lines += ["Each rank's lift minus the next lower rank's: " + "; ".join(
            f"{k}: {lift_text(v[0], v[1:], digits)}" for k, v in gaps.items()) + ".", ""]  # fmt: skip
        for name, claim in claims.items():
            effect = claim.get("effect_size", {})
            lines.append(
                f"- {CLAIM_NAMES[name]}: **{claim['verdict']}** (rule: {claim['rule']}); by effect size: "
                f"**{effect.get('verdict')}** ({effect.get('rule')})"
            )
            lines += [f"  - {line}" for line in effect_lines(effect, digits)]
        lines.append("")
    lines.append(figure_markdown(FIGURE, "figures", png))
    return "\n".join(lines) + "\n"


def effect_lines(effect: dict[str, Any], digits: int) -> list[str]:
    """The numbers behind an effect-size verdict: the peak rank minus each end rank, or the full-FT fraction."""
    gaps = {
        k: v for k, v in (effect.get("peak_minus_end") or {}).items() if k != str(effect.get("peak_rank"))
    }
    out = [f"r{effect['peak_rank']} minus r{k}: {lift_text(v[0], v[1:], digits)}" for k, v in gaps.items()]
    frac = effect.get("fraction")
    if frac and frac[0] is not None:
        out.append(
            f"the best full-FT lift (lr {effect['full_ft_lr']:g}) as a fraction of LoRA r{effect['lora_rank']}'s: "
            f"{fraction_text(frac)}"
        )
    return out


def run(cfg: RankColumnConfig) -> Path:
    """The column in `cfg.out`: config.json, results.json, report.md and the figure."""
    res = rank_column(read_groups(cfg.students), read_references(cfg.reference))
    fig = rank_sweep_figure(res, res["trait"], PANELS, reference=res["reference"])
    with run_directory(cfg.out, cfg, cfg.overwrite) as run_dir:
        written = save_figures({FIGURE: fig}, run_dir / "figures", cfg.png)
        atomic_write_json(run_dir / "results.json", res)
        atomic_write_text(
            run_dir / "report.md", column_markdown(res, any(p.suffix == ".png" for p in written))
        )
    return cfg.out
