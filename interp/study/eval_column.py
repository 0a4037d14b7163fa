"""Claim 3's evaluation column from finished evaluations: students trained under the default system prompt,
evaluated with it and without it, each against a reference (control students, or the base) evaluated the
same way. The cells are the context matrix's (`interp.study.summary.context_cells`) and the verdict is
claim 3's rule (`interp.study.claims.needs_system_prompt`), so that a column read here means what the main
job's does. It needs no training: a study's finished students are evaluated again under "none".

    from interp.study.eval_column import evaluation_column, read_evaluations
    column = evaluation_column(
        {"default": read_evaluations("runs/ctx/lora-default"), "none": read_evaluations("runs/ctx/lora-none")},
        {"default": read_evaluations("runs/ctx/base-default"), "none": read_evaluations("runs/ctx/base-none")},
    )
    column["claim"]["verdict"], column["cells"]   # one cell per evaluation prompt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.study.claims import needs_system_prompt
from interp.study.summary import context_cells

EvalsBySystem = dict[str, list[dict[str, Any]]]
"""Evaluation prompt label ("default", "none", ...) -> one evaluation (`TraitEval.to_json()`) per seed."""


def read_evaluations(run_dir: str | Path, system: str | None = None) -> list[dict[str, Any]]:
    """The per-seed evaluations an `evaluate_trait` run wrote (its metrics.json `per_student`); with
    `system`, an error unless they were evaluated under that prompt."""
    path = Path(run_dir) / "metrics.json"
    if not Path(run_dir).is_dir():
        raise InterpError(f"{run_dir} does not exist (an evaluate_trait run directory)")
    if not path.exists():
        raise InterpError(f"{run_dir}: no metrics.json (an experiments.evaluate_trait run directory?)")
    metrics = json.loads(path.read_text())
    found = metrics.get("settings", {}).get("system")
    if system is not None and found != system:
        raise InterpError(f"{run_dir} was evaluated under the system prompt {found!r}, not {system!r}")
    return metrics["per_student"]


SAME = ("trait", "category", "n_questions", "samples_per_question", "temperature", "seed")
"""Evaluation settings every cell of a column must share (the system prompt is what varies)."""


def check_alike(evals: dict[str, EvalsBySystem]) -> None:
    """An error unless every evaluation in `evals` (side -> prompt -> seeds) asked the same questions the
    same way."""
    seen = {
        (side, system): tuple(e["settings"].get(k) for k in SAME)
        for side, by_system in evals.items()
        for system, seeds in by_system.items()
        for e in seeds
        if "settings" in e
    }
    if len(set(seen.values())) > 1:
        lines = "; ".join(
            f"{side} {system}: {dict(zip(SAME, v, strict=True))}" for (side, system), v in seen.items()
        )
        raise InterpError(f"the evaluations differ in their settings, so their cells do not compare: {lines}")


def _as_results(evals: EvalsBySystem) -> list[dict[str, Any]]:
    """One job-result-like dict per seed, holding its evaluation under every prompt."""
    seeds = {len(v) for v in evals.values()}
    if len(seeds) != 1:
        raise InterpError(f"every evaluation prompt needs the same seeds, got {sorted(seeds)} per prompt")
    return [{"evals": {s: evals[s][i] for s in evals}} for i in range(seeds.pop())]


def evaluation_column(student: EvalsBySystem, reference: EvalsBySystem) -> dict[str, Any]:
    """Cells (the student's lift over the reference under each evaluation prompt, mention rate and
    P(trait), CIs over seeds and questions) and claim 3's verdict on them. Both sides need "default" and
    "none"; a reference with one seed (the base) is compared with every student seed."""
    if set(student) != set(reference) or not {"default", "none"} <= set(student):
        raise InterpError(
            f"student and reference need the same evaluation prompts, with default and none; got "
            f"{sorted(student)} and {sorted(reference)}"
        )
    check_alike({"student": student, "reference": reference})
    results = {("default", "trait"): _as_results(student), ("default", "control"): _as_results(reference)}
    cells = context_cells(results, {s: s for s in student}, {"default": "default"})
    return {"cells": cells, "claim": needs_system_prompt({"context_matrix": cells})}
