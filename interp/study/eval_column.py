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

Students trained under another prompt give another column (`train_system="none"`); `context_grid` joins
the columns into the context matrix, its training row read against the default-trained students.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.runs import read_json
from interp.study.claims import lift_fraction, needs_system_prompt
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


def read_job_evaluations(jobs: Sequence[str | Path], system: str) -> list[dict[str, Any]]:
    """The evaluations under `system` that finished student (or base) jobs wrote into their result.json,
    one per job: the same schema as an evaluate_trait run's, with nothing evaluated again."""
    out = []
    for job in jobs:
        path = Path(job) / "result.json" if Path(job).is_dir() else Path(job)
        missing = f"{job} does not exist or holds no result.json (a finished job directory?)"
        evals = read_json(path, missing).get("evals", {})
        if system not in evals:
            raise InterpError(
                f"{job} was not evaluated under the system prompt {system!r} (it has {sorted(evals)})"
            )
        out.append(evals[system])
    return out


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


def evaluation_column(
    student: EvalsBySystem, reference: EvalsBySystem, train_system: str = "default"
) -> dict[str, Any]:
    """Cells (the student's lift over the reference under each evaluation prompt, mention rate and
    P(trait), CIs over seeds and questions) and claim 3's verdict on them, with the evaluations' shared
    settings. Both sides need "default" and "none"; a reference with one seed (the base) is compared with
    every student seed. `train_system` is the prompt the students trained under: claim 3's rule reads the
    default-trained column, so another column's verdict is "not resolved" until `context_grid` joins it
    to one."""
    if set(student) != set(reference) or not {"default", "none"} <= set(student):
        raise InterpError(
            f"student and reference need the same evaluation prompts, with default and none; got "
            f"{sorted(student)} and {sorted(reference)}"
        )
    check_alike({"student": student, "reference": reference})
    results = {
        (train_system, "trait"): _as_results(student),
        (train_system, "control"): _as_results(reference),
    }
    cells = context_cells(results, {s: s for s in student}, {train_system: train_system})
    first = student["default"][0].get("settings", {})
    return {
        "cells": cells,
        "claim": needs_system_prompt({"context_matrix": cells}),
        "fraction_of_default": evaluation_row(cells),
        "settings": {k: first.get(k) for k in SAME},
    }


def evaluation_row(cells: list[dict[str, Any]]) -> dict[str, list]:
    """Each other evaluation prompt's mention-rate lift as a fraction of the lift under the default prompt,
    (point, lo, hi), questions paired and seeds resampled: how much of the transfer needs the prompt."""
    by = {c["eval_system"]: c["lift_per_question"] for c in cells}
    return {s: lift_fraction(lifts, by["default"]) for s, lifts in by.items() if s != "default"}


def context_grid(columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Claim 3's context matrix joined from `evaluation_column` results (label -> column), one per training
    prompt: every cell; claim 3's verdict, whose rule reads the default-trained column; and the training
    row: for each other training prompt, its students' lift under the default prompt at evaluation, and
    that lift as a fraction of the default-trained students' (mention rate; questions paired, seeds
    resampled). Each column is read against its own reference."""
    cells = [c for col in columns.values() for c in col["cells"]]
    trained = [c["train_system"] for c in cells if c["eval_system"] == "default"]
    if len(set(trained)) != len(trained) or "default" not in trained:
        raise InterpError(f"the grid needs one column per training prompt, default among them; got {trained}")
    settings = {label: col.get("settings") for label, col in columns.items()}
    if None in settings.values() or len({tuple(v.items()) for v in settings.values()}) > 1:
        raise InterpError(f"the columns' evaluations differ in their settings (or do not say them), so their "
                          f"cells do not compare: {settings}")  # fmt: skip
    grid = {(c["train_system"], c["eval_system"]): c for c in cells}
    with_prompt = grid[("default", "default")]["lift_per_question"]
    row = {
        train: {
            "mention_lift": [c["lift"], *c["mention_diff_ci"]],
            "p_trait_lift": [c["p_trait_diff"], *c["p_trait_diff_ci"]],
            "fraction_of_default_trained": lift_fraction(c["lift_per_question"], with_prompt),
        }
        for (train, ev), c in grid.items()
        if ev == "default" and train != "default"
    }
    claim = needs_system_prompt({"context_matrix": cells})
    return {"cells": cells, "claim": claim, "training_row": row, "settings": next(iter(settings.values()))}
