"""The positive-control ladder: does the toolkit see transfer on this model when the signal is made stronger?

Each rung is a way for a teacher to pass its trait to a student, read against a control trained the same
way on the control teacher's output (its sampled numbers, its greedy numbers or its logits):

- **sampled**: the paper's protocol, the persona teacher's sampled numbers, cross-entropy;
- **greedy**: the persona teacher's greedy numbers (temperature 0);
- **distill**: the persona teacher's next-token distributions on its numbers (forward KL);
- **finetuned** / **finetuned-distill**: a teacher with the trait in its weights (the base LoRA-trained to
  name the trait), sampled or distilled.

A distillation control matches its own initialisation's logits, so its gradient is zero and it stays at
the base by construction (`distill_loss_sum`); it is trained all the same, and its evaluation says so.

`run(cfg)` trains and evaluates every rung on every arm and seed (jobs shared between rungs run once; a
rerun resumes), and returns one row per (rung, arm): the P(trait) and mention-rate lifts with their CIs
over seeds and questions, and the minimum detectable lift (`interp.study.power`) beside each.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from interp import InterpError
from interp.loop.chat import DEFAULT
from interp.loop.models import model_label
from interp.loop.teacher import trait_dataset
from interp.plan.plan import QUESTION_TOKENS, TrainShape, sampling_stage, training_stage
from interp.plan.plan_check import Plan, detect_device
from interp.plan.shapes import read_model_shape
from interp.study.experiment import (
    StudentSpec,
    StudyConfig,
    assumptions,
    check_inputs,
    evaluation_shape,
    numbers_shape,
    run_study,
    train_shape,
)
from interp.study.jobs import base_job, numbers_job, student_job
from interp.study.plots.ladder import ladder_figure
from interp.study.power import Components, estimate_components, mde
from interp.study.summary import per_question, pooled, significant, versus_control
from interp.study.sweep import run_jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rung:
    """Which teacher writes, how it is decoded, and what the student learns from it."""

    teacher: str
    """A `jobs.TEACHERS` name: trait (persona prompt) or finetuned (trait in the weights)."""
    greedy: bool = False
    loss: str = "ce"
    """ce: the teacher's tokens; distill: its next-token distributions."""


RUNGS = {
    "sampled": Rung("trait"),
    "greedy": Rung("trait", greedy=True),
    "distill": Rung("trait", loss="distill"),
    "finetuned": Rung("finetuned"),
    "finetuned-distill": Rung("finetuned", loss="distill"),
}
ARMS = ("lora", "full")
METRICS = (("p_trait", "per_question_p_trait"), ("mention", "per_question_mention"))


@dataclass
class LadderConfig(StudyConfig):
    """Positive controls for transfer on one model: each rung against its own control, on LoRA and full FT."""

    rungs: tuple[str, ...] = tuple(RUNGS)
    """Rungs, in the order they run: sampled, greedy, distill, finetuned, finetuned-distill."""
    arms: tuple[str, ...] = ("lora",)
    """Students: lora (rank --rank at --lora-lr) and/or full (full FT at --full-lr)."""
    rank: int = 16
    """LoRA rank of the lora arm."""
    control_seeds: tuple[int, ...] = ()
    """Extra training seeds of the sampled rung's control alone: the seed-to-seed spread the MDE needs,
    measured where the ladder itself runs one seed."""
    seed_sd_p_trait: float | None = None
    """Assumed between-seed SD of a model's mean P(trait), where no control has two seeds (stated as
    assumed beside every MDE it prices)."""
    seed_sd_mention: float | None = None
    """The same for the mention rate."""
    power_records: tuple[Path, ...] = ()
    """Recorded results.json files (rank sweeps) whose student-versus-control pairs add to the residual
    spread the MDE is priced from."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.rungs) - set(RUNGS)) + sorted(set(self.arms) - set(ARMS))
        if unknown or not self.rungs or not self.arms:
            raise InterpError(f"unknown or no rung/arm {unknown}; rungs {list(RUNGS)}, arms {list(ARMS)}")


def arm_spec(cfg: LadderConfig, arm: str, loss: str) -> StudentSpec:
    options = (("loss", "distill"),) if loss == "distill" else ()
    if arm == "lora":
        return StudentSpec("lora", cfg.rank, cfg.lora_lr, options=options)
    return StudentSpec("full", 1, cfg.full_lr, options=options)


def rung_jobs(cfg: LadderConfig, rung: Rung, arm: str, teacher: str, seeds) -> list:
    """One rung's numbers jobs, then its students (trait teacher or control) on each seed."""
    systems = {"default": DEFAULT}
    spec = arm_spec(cfg, arm, rung.loss)
    data = [numbers_job(cfg, teacher, d, rung.greedy) for d in cfg.data_seeds]
    students = [
        student_job(cfg, spec, teacher, d, t, systems, greedy=rung.greedy)
        for d in cfg.data_seeds
        for t in seeds
    ]
    return data + students


def _students(jobs: list, results: list[dict]) -> list[dict]:
    return [r for j, r in zip(jobs, results, strict=True) if j.kind == "student"]


def run_rungs(cfg: LadderConfig, root: Path) -> dict[str, Any]:
    """Every rung x arm: trait students and control students, each list of results keyed by cell. The
    sampled rung's extra control seeds run last, after every rung has its first answer."""
    ex = cfg.executor_config
    base = run_jobs([base_job(cfg, {"default": DEFAULT})], root, ex)[0]
    cells = {}
    for name in cfg.rungs:
        rung = RUNGS[name]
        for arm in cfg.arms:
            trait_jobs = rung_jobs(cfg, rung, arm, rung.teacher, cfg.train_seeds)
            ctl_jobs = rung_jobs(cfg, rung, arm, "control", cfg.train_seeds)
            trait = _students(trait_jobs, run_jobs(trait_jobs, root, ex))
            control = _students(ctl_jobs, run_jobs(ctl_jobs, root, ex))
            cells[(name, arm)] = (trait, control, [j.name for j in ctl_jobs if j.kind == "student"])
    extra = tuple(s for s in cfg.control_seeds if s not in cfg.train_seeds)
    for arm in cfg.arms if extra and "sampled" in cfg.rungs else ():
        jobs = rung_jobs(cfg, RUNGS["sampled"], arm, "control", extra)
        trait, control, names = cells[("sampled", arm)]
        more = _students(jobs, run_jobs(jobs, root, ex))
        cells[("sampled", arm)] = (
            trait,
            control + more,
            names + [j.name for j in jobs if j.kind == "student"],
        )
    return {"base": base, "cells": cells}


def components(cfg: LadderConfig, cells: dict) -> dict[str, Components]:
    """Per metric: the residual from every (student, control) pair of this ladder and the records; the
    seed variance from the controls trained on two seeds or more, else `cfg.seed_sd` (stated)."""
    out = {}
    for metric, key in METRICS:
        pairs, seeded = [], []
        for trait, control, _ in cells.values():
            a, b = per_question(trait, "default", metric), per_question(control, "default", metric)
            pairs += [(x, b.mean(0)) for x in a]
            if len(control) > 1:
                seeded.append(b)
        pairs += recorded_pairs(cfg.power_records, key)
        c = estimate_components(metric, pairs, seeded, samples=cfg.samples_per_question)
        if c.seed_var is None:
            sd = getattr(cfg, f"seed_sd_{metric}")
            c = replace(c, seed_var=None if sd is None else sd**2, seed_source=f"assumed (SD {sd})")
        out[metric] = c
    return out


def recorded_pairs(paths, key: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(student, its control) per-question arrays of one metric from recorded rank-sweep results."""
    pairs = []
    for path in paths:
        res = json.loads(Path(path).read_text())
        control = np.asarray(res["control"][key])
        for row in res.get("rank_sweep", []):
            pairs.append((np.asarray(row[key]), control))
    return pairs


def cell_row(cfg: LadderConfig, name: str, arm: str, cell, comps: dict[str, Components]) -> dict[str, Any]:
    """One (rung, arm) of the table: levels, lifts with CIs over seeds and questions, MDEs, a verdict."""
    trait, control, control_jobs = cell
    vs = versus_control(trait, control, "default")
    seeds = min(len(trait), len(control))
    row = {
        "rung": name,
        "arm": arm,
        "lr": cfg.lora_lr if arm == "lora" else cfg.full_lr,
        "seeds": len(trait),
        "control_seeds": len(control),
        "control_jobs": control_jobs,
        "student": pooled(trait, "default"),
        "control": pooled(control, "default"),
        **vs,
    }
    for metric, diff in (("p_trait", "p_trait_diff"), ("mention", "mention_diff")):
        c = comps[metric]
        m = None if c.seed_var is None else mde(c, seeds, cfg.n_questions, cfg.samples_per_question)
        row[f"{metric}_mde"] = m
        row[f"{metric}_transfers"] = bool(significant(row[f"{diff}_ci"]) and row[diff] > 0)
    return row


def summarise(cfg: LadderConfig, runs: dict[str, Any]) -> dict[str, Any]:
    cells = runs["cells"]
    comps = components(cfg, cells)
    rows = [cell_row(cfg, name, arm, cell, comps) for (name, arm), cell in cells.items()]
    first = next((r for r in rows if r["p_trait_transfers"] or r["mention_transfers"]), None)
    return {
        "base": pooled([runs["base"]], "default"),
        "rows": rows,
        "components": {k: c.to_json() for k, c in comps.items()},
        "first_transfer": None if first is None else {k: first[k] for k in ("rung", "arm")},
    }


def all_jobs(cfg: LadderConfig) -> list:
    """Every job the ladder runs, once each (rungs share their controls and their teachers' numbers)."""
    jobs = {}
    for name in cfg.rungs:
        rung = RUNGS[name]
        for arm in cfg.arms:
            ctl_seeds = tuple(
                dict.fromkeys(cfg.train_seeds + (cfg.control_seeds if name == "sampled" else ()))
            )
            for j in rung_jobs(cfg, rung, arm, rung.teacher, cfg.train_seeds) + rung_jobs(
                cfg, rung, arm, "control", ctl_seeds
            ):
                jobs[j.name] = j
    return list(jobs.values())


def ladder_plan(cfg: LadderConfig) -> Plan:
    """The ladder's compute: each kind of run priced once, times how many distinct jobs of it there are
    (a distilling student also runs its teacher forward: priced as a third more than its training)."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    jobs = all_jobs(cfg)
    n_numbers = sum(j.kind == "numbers" for j in jobs)
    n_finetuned = sum(j.kind == "numbers" and "finetuned" in j.params for j in jobs)
    stages = [sampling_stage("teacher numbers", shape, numbers_shape(cfg), device.kind, n_numbers)]
    if n_finetuned:
        t = TrainShape("lora", 16, cfg.dtype, batch_size=8, prompt_tokens=QUESTION_TOKENS, answer_tokens=8)
        t = replace(t, examples=len(trait_dataset(cfg.trait, cfg.category)))
        stages.append(training_stage("fine-tuned teacher (LoRA r16)", shape, t, device.kind, n_finetuned))
    for arm in cfg.arms:
        students = [j for j in jobs if j.kind == "student" and j.params["train"]["mode"] == arm]
        distilled = sum(j.params["train"].get("loss") == "distill" for j in students)
        stage = training_stage(f"student {arm}", shape, train_shape(cfg, arm, cfg.rank), device.kind)
        stages.append(
            replace(stage, runs=len(students), flops=stage.flops * (1 + distilled / 3 / len(students)))
        )
    n_evals = 1 + sum(j.kind == "student" for j in jobs)
    stages.append(sampling_stage("evaluation", shape, evaluation_shape(cfg), device.kind, n_evals))
    return Plan(f"ladder on {model_label(cfg.model)}", shape, device, tuple(stages), assumptions(cfg))


def power_text(cfg: LadderConfig, comps: dict[str, Components]) -> str:
    """The MDE of each metric at the planned seeds, questions and samples, and where its spread comes from."""
    seeds = len(cfg.train_seeds)
    lines = [
        f"Power (80%, two-sided 0.05), {seeds} seed(s) per arm, {cfg.n_questions} questions x "
        f"{cfg.samples_per_question} samples:"
    ]
    for metric, c in comps.items():
        resid = c.residual_var(cfg.samples_per_question) ** 0.5
        if c.seed_var is None:
            lines.append(
                f"  {metric}: residual SD {resid:.3g}; seed SD unknown (one seed per model; give --seed-sd)"
            )
            continue
        m = mde(c, seeds, cfg.n_questions, cfg.samples_per_question)
        lines.append(
            f"  {metric}: MDE {m:.3g} (residual SD {resid:.3g}, seed SD {c.seed_var**0.5:.3g} {c.seed_source}, "
            f"level {c.level:.3g})"
        )
    return "\n".join(lines)


def run(cfg: LadderConfig) -> Path:
    """The ladder as a library call: checks, plan and power, every job, results.json and the figure."""
    check_inputs(cfg)
    if cfg.plan:
        sys.stdout.write(power_text(cfg, components(cfg, {})) + "\n")
    summary = lambda c, root: summarise(c, run_rungs(c, root))  # noqa: E731
    return run_study(cfg, "ladder", summary, ladder_figure, plan=ladder_plan(cfg))
