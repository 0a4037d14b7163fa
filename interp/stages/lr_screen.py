"""Each arm's best lr from an lr screen of finished students (no training): the screen's table per arm, each
arm's pick by the fit rule and by the lift-among-sound rule (`interp.study.lr_screen`), and its figure. With
`fluency_model` (the base), every student's and the reference's example answers are scored under it first
(`interp.loop.fluency`), which adds the answers' excess NLL to each row and the lift-among-fluent rule.

    run(LrScreenConfig(
        students=("r16@1e-3=docs/.../r16-lr1e-3-t0.result.json", "r16@3e-3=runs/ladder/jobs/student-...-t0",
                  "full@3e-5=...", "full@1e-4=..."),
        reference=(Path("docs/.../base.result.json"),),
        out=Path("runs/lr-screen"),
    ))

The run directory gets config.json, results.json (rows, rules, picks), report.md and the figure. The picks
are labels that `experiments.rank_column --students` takes, so claims 1 and 2 can be read at them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from interp.loop.fluency import example_nll
from interp.loop.models import load_model
from interp.loop.runs import atomic_write_json, atomic_write_text, run_directory
from interp.loop.threads import torch_threads
from interp.loop.traits import mentions
from interp.stages.rank_column import FinishedStudentsConfig
from interp.study.ladder_report import lift_text
from interp.study.lr_screen import screen
from interp.study.plots.heatmaps import save_figures
from interp.study.plots.ladder import lr_screen_figure
from interp.study.rank_column import read_groups, read_references
from interp.study.report import figure_markdown

FIGURE = "lr_screen"


@dataclass
class LrScreenConfig(FinishedStudentsConfig):
    """An lr screen from finished student and reference jobs: one label per (arm, lr), its seeds pooled."""

    max_loss_ratio: float = 5.0
    """An lr is sound while its final loss is at most this times its arm's lowest."""
    fluency_model: str | None = None
    """The base (a name such as smollm2-135m, or a directory) under which to score every student's and the
    reference's example answers (`interp.loop.fluency`); unset: no fluency column and no fluent rule."""
    max_excess_nll: float = 1.0
    """An lr is fluent while its answers' excess NLL under the base is at most this many nats per token."""
    fluency_skip_trait: bool = False
    """Leave out answers that mention the trait: the trait word is improbable under the base by design, so a
    student that names it more loses likelihood that is not lost fluency (a sensitivity check)."""
    threads: int = 2
    """Torch threads for scoring the answers (the caller's own setting is restored after)."""

    stage: ClassVar[str] = "lr_screen"


def screen_markdown(res: dict[str, Any], png: bool) -> str:
    """One table over every arm and lr, then each rule's pick per arm."""
    t, fluency = res["trait"], res["max_excess_nll"] is not None
    lines = [
        "# lr screen",
        "",
        f"Lifts over the {res['reference']} (P({t}) {res['control']['p_trait']:.4f}, mention rate "
        f"{res['control']['mention_rate']:.3f}), with 95% CIs over seeds and questions."
        + (FLUENCY_NOTE if fluency else "")
        + (" Answers that mention the trait are left out." if res.get("fluency_skip_trait") else ""),
        "",
        f"| arm | lr | seeds | final loss (per seed) | / arm's lowest | P({t}) lift | mention-rate lift |"
        + (" answers' excess NLL |" if fluency else "")
        + " picked by |",
        "|---|---|---|---|---|---|---|" + ("---|" if fluency else "") + "---|",
    ]
    for arm, rows in res["arms"].items():
        lines += [table_row(res, arm, r, fluency) for r in rows]
    lines += ["", "## Each arm's best lr", ""]
    units = {
        "fit": ("final loss", 4),
        "lift_among_sound": (f"P({t}) lift", 4),
        "lift_among_fluent": (f"P({t}) lift", 4),
    }
    for rule, text in res["rules"].items():
        lines.append(f"- **{rule}**, {text}:")
        for arm, label in res["best"][rule].items():
            nxt = res["runner_up"][rule][arm]
            name, digits = units[rule]
            detail = f"next {nxt['label']}, {name} {nxt['gap']:+.{digits}f}" if nxt else "no other candidate"
            lines.append(
                f"  - {arm}: {label} ({detail})" if label else f"  - {arm}: none (no lr within the bound)"
            )
    lines += ["", figure_markdown(FIGURE, "figures", png)]
    return "\n".join(lines) + "\n"


FLUENCY_NOTE = (
    " The answers' excess NLL is the base's NLL per token of each student's example answers minus that of the"
    " reference's answers to the same questions (nats; 95% CI over seeds and questions; q: the questions"
    " compared, those where every student and the reference scored an answer)."
)


def fluency_text(r: dict[str, Any]) -> str:
    """The row's excess NLL with its CI and how many questions it compares; or why there is none."""
    if r["questions_compared"] == 0:
        return "no question to compare (not fluent)"
    text = f"{lift_text(r['excess_nll'], r['excess_nll_ci'], 2)} ({r['questions_compared']} q)"
    return text + ("" if r["fluent"] else " (not fluent)")


def table_row(res: dict[str, Any], arm: str, r: dict[str, Any], fluency: bool) -> str:
    picked = [rule for rule, p in res["best"].items() if p[arm] == r["label"]]
    losses = " / ".join(f"{x:.3f}" for x in r["final_losses"])
    nll = f" {fluency_text(r)} |" if fluency else ""
    return (
        f"| {arm} | {r['lr']:g} | {r['seeds']} | {losses} | {r['loss_ratio']:.1f}"
        f"{'' if r['sound'] else ' (overshot)'} | {lift_text(r['p_trait_diff'], r['p_trait_diff_ci'], 4)} | "
        f"{lift_text(r['mention_diff'], r['mention_diff_ci'], 3)} |{nll} {', '.join(picked) or '-'} |"
    )


def score_answers(cfg: LrScreenConfig, results: list[dict[str, Any]]) -> None:
    """Attach to each result its example answers' NLL per token under the base (`example_nll`); NaN for an
    answer that mentions the trait where `cfg.fluency_skip_trait`."""
    with torch_threads(cfg.threads):
        model, tok = load_model(cfg.fluency_model)
        for r in results:
            ev = r["evals"]["default"]
            nll = example_nll(model, tok, ev)
            if cfg.fluency_skip_trait:
                trait = ev["settings"]["trait"]
                nll[[mentions(a, trait) for a in ev["example_answers"]]] = np.nan
            r["example_nll"] = nll.tolist()


def run(cfg: LrScreenConfig) -> Path:
    """The screen in `cfg.out`: config.json, results.json, report.md and the figure."""
    groups, reference = read_groups(cfg.students), read_references(cfg.reference)
    if cfg.fluency_model is not None:
        score_answers(cfg, [s for g in groups.values() for s in g] + reference)
    res = screen(groups, reference, cfg.max_loss_ratio, cfg.max_excess_nll)
    res["fluency_skip_trait"] = cfg.fluency_model is not None and cfg.fluency_skip_trait
    with run_directory(cfg.out, cfg, cfg.overwrite) as run_dir:
        written = save_figures({FIGURE: lr_screen_figure(res)}, run_dir / "figures", cfg.png)
        atomic_write_json(run_dir / "results.json", res)
        atomic_write_text(
            run_dir / "report.md", screen_markdown(res, any(p.suffix == ".png" for p in written))
        )
    return cfg.out
