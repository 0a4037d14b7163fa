"""Claim 4 over seeds: where the shift lives, from finished restricted-LoRA and patching runs (no model is
loaded). One panel per student - a seed, or an arm - with restricted LoRA and set patching side by side on
one scale, and which sets every student agrees on.

    run(WhereConfig(
        patching=[Path("runs/patch-lora-t0"), Path("runs/patch-lora-t1")],
        localization=[Path("runs/restrict-t0"), Path("runs/restrict-t1")],
        out=Path("runs/where-lora"),
    ))

Each patching input is an `experiments.patch_activations` run directory, each localization input an
`experiments.restrict_adapter` one; a localization run joins the patching run of the same student (a
full-FT student has patching only). Every run must read the same trait against the same reference (the base,
or one control student), or the fractions would sit on different scales. The run directory gets
config.json, results.json (each student's where table and the agreement across students), report.md and the
figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.runs import atomic_write_json, atomic_write_text, run_directory
from interp.stages.patching import where_notes, where_title
from interp.study.plots import where_figure
from interp.study.plots.heatmaps import save_figures
from interp.study.report import figure_markdown, to_markdown
from interp.study.where import FIGURE, seed_agreement, where_blocks, where_table


@dataclass
class WhereConfig:
    """Where the shift lives, over students: patch_activations runs, and restrict_adapter runs of the same
    LoRA students."""

    patching: list[Path] = field(default_factory=list)
    """patch_activations run directories, one per student."""
    localization: list[Path] = field(default_factory=list)
    """restrict_adapter run directories of the same students (LoRA only)."""
    out: Path | None = None
    """Run directory."""
    overwrite: bool = False
    """Replace an existing run directory."""
    png: bool = True
    """Also write the figure as PNG (needs a browser for kaleido)."""

    def __post_init__(self) -> None:
        if not self.patching and not self.localization:
            raise InterpError("where_shift needs --patching and/or --localization run directories")
        if self.out is None:
            raise InterpError("where_shift needs --out")


def _read(run: Path, flag: str, name: str) -> dict[str, Any]:
    """A run directory's config.json and `name`, as one error naming the flag if either is missing."""
    run = Path(run)
    try:
        return {
            "config": json.loads((run / "config.json").read_text()),
            **json.loads((run / name).read_text()),
        }
    except (OSError, json.JSONDecodeError) as e:
        raise InterpError(f"--{flag} {run}: not a finished run directory ({e})") from None


def _same(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _student(label: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "student": config.get("student"), "control": _same(config.get("control")),
            "trait": config.get("trait"), "model": config.get("base") or config.get("model"), "sets": {},
            "n_prompts": None, "n_questions": None, "localization": None}  # fmt: skip


def _reference(student: dict[str, Any]) -> str:
    """What 0 means in the student's fractions: the base, or a control student."""
    return "base" if student["control"] is None else "control"


def read_runs(cfg: WhereConfig) -> list[dict[str, Any]]:
    """One record per student: its label, its student directory, its patching sets and its restricted rows,
    with each localization run joined to the patching run of the same student."""
    students: dict[str | None, dict[str, Any]] = {}
    for run in cfg.patching:
        res = _read(run, "patching", "scores.json")
        label = res.get("student") or res["config"].get("student_label") or Path(run).name
        students[_same(res["config"].get("student"))] = _student(label, res["config"]) | {
            "sets": res.get("sets", {}), "n_prompts": res.get("n_prompts")}  # fmt: skip
    for run in cfg.localization:
        res = _read(run, "localization", "results.json")
        c = res["config"]
        known = students.setdefault(_same(c.get("student")), _student(Path(run).name, c))
        if _same(c.get("control")) != known["control"] or c.get("trait") != known["trait"]:
            raise InterpError(
                f"--localization {run}: its trait or reference ({c.get('trait')}, control "
                f"{c.get('control')}) is not its patching run's ({known['trait']}, control {known['control']})"
            )
        known["localization"], known["n_questions"] = res, c.get("n_questions")
    check_one_scale(list(students.values()))
    check_labels(list(students.values()))
    return list(students.values())


def check_labels(students: list[dict[str, Any]]) -> None:
    """One label per student: panels and tables are keyed by label, so two students under one label would
    silently become one panel."""
    labels = [s["label"] for s in students]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise InterpError(f"--patching: two students share the label {twice}; give each run its own "
                          f"--student-label (or name the run directories apart)")  # fmt: skip


def check_one_scale(students: list[dict[str, Any]]) -> None:
    """Every student read for the same trait against the same kind of reference, so one figure's colours
    mean one thing."""
    traits = {s["trait"] for s in students}
    refs = {_reference(s) for s in students}
    if len(traits) > 1 or len(refs) > 1:
        raise InterpError(f"the runs read different traits or references: traits {sorted(map(str, traits))}, "
                          f"references {sorted(refs)}; give runs of one trait against one kind of reference")  # fmt: skip


def summarise(students: list[dict[str, Any]]) -> dict[str, Any]:
    """Each student's where table, the agreement across them, and the metric and reference they read."""
    tables = {s["label"]: where_table(s["localization"], s["sets"]) for s in students}
    metric = next((s["sets"]["metric"] for s in students if s["sets"].get("metric")), None)
    if metric is None:
        metric = f"P({students[0]['trait']})"
    return {
        "where": tables,
        "students": {s["label"]: s["student"] for s in students},
        "metric": metric,
        "reference": _reference(students[0]),
        "trait": students[0]["trait"],
        "model": students[0]["model"],
        "n_prompts": next((s["n_prompts"] for s in students if s["n_prompts"]), None),
        "n_questions": next((s["n_questions"] for s in students if s["n_questions"]), None),
        "agreement": seed_agreement(tables),
    }


def agreement_blocks(res: dict[str, Any]) -> list[tuple]:
    """What every student agrees on, column by column."""
    rows = [
        [f"{a['method']} ({a['question']})", "; ".join(f"{n}: {', '.join(v) or 'none'}" for n, v in a["by_student"].items()),
         ", ".join(a["every_student"]) or "none"]
        for a in res["agreement"]
    ]  # fmt: skip
    return [
        ("h2", "What every student agrees on"),
        (
            "p",
            "Per column, the sets whose whole 95% CI answers its question yes (past 0.5 of the shift: above "
            "for 'suffices', below for 'is needed'), by student, and the sets every student that ran the "
            "method answers yes for. Patching the readout whole answers yes in both patching columns by "
            "construction wherever the student's final norm and unembedding are the reference's (a LoRA "
            "student): there only restricted LoRA says whether the readout carries the shift.",
        ),
        ("table", ["column", "by student", "every student"], rows),
    ]


def run(cfg: WhereConfig) -> Path:
    """The where tables over students in `cfg.out`: config.json, results.json, report.md and the figure."""
    res = summarise(read_runs(cfg))
    title = where_title(res["trait"], res["model"] or "?", res["n_questions"], res["n_prompts"])
    fig = where_figure(res["where"], title, res["metric"], res["reference"], where_notes(res))
    blocks = [("h1", "Where the shift lives, over students"), *where_blocks(res), *agreement_blocks(res)]
    with run_directory(cfg.out, cfg, cfg.overwrite) as run_dir:
        written = save_figures({FIGURE: fig}, run_dir / "figures", cfg.png)
        png = any(p.suffix == ".png" for p in written)
        atomic_write_json(run_dir / "results.json", res)
        md = to_markdown(blocks, {FIGURE: figure_markdown(FIGURE, "figures", png)})
        atomic_write_text(run_dir / "report.md", md)
    return cfg.out
