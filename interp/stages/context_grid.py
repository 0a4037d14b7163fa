"""Claim 3's context matrix from evaluation columns (no training): one `experiments.eval_column` run per
training prompt (students trained under the default prompt, and under none), joined into the matrix's cells,
claim 3's verdict and the training row.

    run(ContextGridConfig(
        columns=(Path("runs/ctx/column-lora"), Path("runs/ctx/column-lora-none")),
        out=Path("runs/ctx/grid-lora"),
    ))

The run directory gets config.json, results.json (`interp.study.eval_column.context_grid`), report.md and
the context matrix's figure, drawn as the main job draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.runs import atomic_write_json, atomic_write_text, read_json, run_directory
from interp.study.eval_column import context_grid
from interp.study.ladder_report import fraction_text, lift_text
from interp.study.plots.figures import context_matrix_figure
from interp.study.plots.heatmaps import save_figures
from interp.study.report import figure_markdown

FIGURE = "context_matrix"


@dataclass
class ContextGridConfig:
    """Claim 3's context matrix from eval_column runs, one per training prompt."""

    columns: tuple[Path, ...] = ()
    """eval_column run directories, one per training prompt, the default-trained one among them."""
    out: Path | None = None
    """Run directory."""
    overwrite: bool = False
    """Replace an existing run directory."""
    png: bool = True
    """Also write the figure as PNG (needs a browser for kaleido)."""

    def __post_init__(self) -> None:
        missing = [f for f in ("columns", "out") if not getattr(self, f)]
        if missing:
            raise InterpError("context_grid needs " + ", ".join("--" + m for m in missing))


def read_column(path: Path) -> dict[str, Any]:
    """An eval_column run's results; a bad input is one error that names --columns."""
    try:
        column = read_json(Path(path) / "results.json", f"{path}: no results.json")
    except InterpError as e:
        raise InterpError(f"--columns {e} (an experiments.eval_column run directory?)") from None
    if "cells" not in column:
        raise InterpError(f"--columns {path} holds no cells (an experiments.eval_column run directory?)")
    return column


def grid_markdown(grid: dict[str, Any], png: bool) -> str:
    """The cells as one table, claim 3's verdict under its rule, and the training row."""
    claim, effect = grid["claim"], grid["claim"].get("effect_size", {})
    rows = [
        f"| {c['train_system']} | {c['eval_system']} | {c['mention_rate']:.3f} | {c['control_mention_rate']:.3f} "
        f"| {lift_text(c['lift'], c['mention_diff_ci'], 3)} | {lift_text(c['p_trait_diff'], c['p_trait_diff_ci'], 4)} |"
        for c in grid["cells"]
    ]
    lines = [
        "# Claim 3's context matrix",
        "",
        "Each training prompt's students read against their own reference, evaluated the same way; 95% CIs "
        "over seeds and questions.",
        "",
        "| trained under | evaluated under | students' mention rate | reference's | mention-rate lift | "
        "P(trait) lift |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"- Transfer only with the default system prompt at evaluation: **{claim['verdict']}** (rule: "
        f"{claim['rule']}); by effect size: **{effect.get('verdict', claim['verdict'])}** "
        f"({effect.get('rule', claim['rule'])}).",
    ]
    for train, r in grid["training_row"].items():
        frac = r["fraction_of_default_trained"]
        kept = fraction_text(frac, "undefined")
        lines.append(
            f"- Trained under {train!r}, evaluated with the default prompt: mention-rate lift "
            f"{lift_text(r['mention_lift'][0], r['mention_lift'][1:], 3)}, P(trait) lift {lift_text(r['p_trait_lift'][0], r['p_trait_lift'][1:], 4)}; its mention-rate "
            f"lift is {kept} of the default-trained students' (questions paired, seeds resampled)."
        )
    return "\n".join([*lines, "", figure_markdown(FIGURE, "figures", png)]) + "\n"


def run(cfg: ContextGridConfig) -> Path:
    """The matrix in `cfg.out`: config.json, results.json, report.md and the figure."""
    grid = context_grid({str(p): read_column(p) for p in cfg.columns})
    fig = context_matrix_figure(grid["cells"], grid["settings"].get("trait") or "trait")
    with run_directory(cfg.out, cfg, cfg.overwrite) as run_dir:
        written = save_figures({FIGURE: fig}, run_dir / "figures", cfg.png)
        atomic_write_json(run_dir / "results.json", grid)
        png = any(p.suffix == ".png" for p in written)
        atomic_write_text(run_dir / "report.md", grid_markdown(grid, png))
    return cfg.out
