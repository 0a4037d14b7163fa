"""The positive-control ladder: does the toolkit see transfer on this model when the signal is made stronger?

Each rung is a way for a teacher to pass its trait to a student, read against a control trained the same
way on the control teacher's output (its sampled numbers, its greedy numbers or its logits):

- **sampled**: the paper's protocol, the persona teacher's sampled numbers, cross-entropy;
- **greedy**: the persona teacher's greedy numbers (temperature 0);
- **distill**: the persona teacher's next-token distributions on its numbers (forward KL);
- **finetuned** / **finetuned-distill**: a teacher with the trait in its weights (the base LoRA-trained to
  name the trait), sampled or distilled.

A distillation control matches its own initialisation's logits, so its gradient is zero and it stays at
the base by construction (`distill_loss_sum`). It is trained by default; `--check-distill-control` checks on
the model itself that it keeps every weight, and `--distill-control base` then reads the distillation rungs
against the base, which is that control bit for bit, without training it.

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

from interp import InterpError
from interp.loop.chat import DEFAULT, NONE
from interp.loop.runs import atomic_write_json, atomic_write_text
from interp.stages.context_matrix import prompt_texts
from interp.study.distill_check import CHECK_FILE, check_distill_control, distill_control_holds
from interp.study.experiment import (
    StudentSpec,
    StudyConfig,
    check_inputs,
    run_study,
)
from interp.study.jobs import base_job, numbers_job, student_job
from interp.study.ladder_plan import ladder_plan, power_text
from interp.study.ladder_report import ladder_markdown
from interp.study.plots.ladder import ladder_figure
from interp.study.power import (
    Components,
    estimate_components,
    mde,
    recorded_pairs,
    seed_verdict,
)
from interp.study.summary import per_question, pooled, versus_control
from interp.study.sweep import finished, run_jobs

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
EVAL_LABELS = ("none", "other identity", "entity-free")
"""Claim 3's evaluation prompts besides the default (`interp.stages.context_matrix.prompt_texts`)."""
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
    train_system: str = DEFAULT
    """The system prompt students train under: default (the paper's setting) or none (claim 3's training
    row; its students are evaluated under both, and a distillation rung then needs a trained control)."""
    eval_systems: tuple[str, ...] = ()
    """Further evaluation prompts of every student and the base, by claim 3's labels: none, "other
    identity", entity-free (read with `experiments.eval_column --student-jobs`). The table reads the default
    prompt; students are always evaluated under it, and under none too with --train-system none."""
    control_seeds: tuple[int, ...] = ()
    """Extra training seeds of the sampled-answer control (the control of the sampled and finetuned rungs):
    the seed-to-seed spread the MDE needs, measured where the ladder itself runs one seed."""
    seed_sd_p_trait: float | None = None
    """Assumed between-seed SD of a model's mean P(trait), where no control has two seeds (stated as
    assumed beside every MDE it prices)."""
    seed_sd_mention: float | None = None
    """The same for the mention rate."""
    distill_control: str = "train"
    """train: train each distillation rung's control; base: read distillation rungs against the base,
    which is what their control is when --check-distill-control (this run or an earlier one in --out)
    found that it keeps every weight exactly (refused otherwise)."""
    check_distill_control: bool = False
    """First train a distillation control for a few steps on this model at each arm's lr and write the
    largest weight change (0 for a real control) to distill_control_check.json."""
    target_p_trait: float = 0.0015
    """The P(trait) MDE the evaluation is sized for (--plan says how many seeds reach it)."""
    summarise_only: bool = False
    """Run nothing: write results.json and the figure from the jobs finished so far (a long ladder read
    while it runs; unfinished cells are listed as pending)."""
    power_records: tuple[Path, ...] = ()
    """Recorded results.json files (rank sweeps) whose student-versus-control pairs add to the residual
    spread the MDE is priced from."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.rungs) - set(RUNGS)) + sorted(set(self.arms) - set(ARMS))
        if self.distill_control not in ("train", "base"):
            unknown.append(f"--distill-control {self.distill_control}")
        if self.train_system not in (DEFAULT, NONE):
            unknown.append(f"--train-system {self.train_system}")
        unknown += [f"--eval-systems {s}" for s in self.eval_systems if s not in EVAL_LABELS]
        if unknown or not self.rungs or not self.arms:
            raise InterpError(f"unknown or no rung/arm {unknown}; rungs {list(RUNGS)}, arms {list(ARMS)}")


def arm_spec(cfg: LadderConfig, arm: str, loss: str) -> StudentSpec:
    options = (("loss", "distill"),) if loss == "distill" else ()
    rank, lr = (cfg.rank, cfg.lora_lr) if arm == "lora" else (1, cfg.full_lr)
    return StudentSpec(
        arm, rank, lr, train_system=cfg.train_system, system_label=cfg.train_system, options=options
    )


def eval_systems(cfg: LadderConfig, student: bool = True) -> dict[str, str]:
    """The prompts a student (or, `student=False`, the base) is evaluated under, label -> text: the
    default; none for students trained without a prompt; then `cfg.eval_systems`. Without the latter the
    jobs' names are those of the runs recorded before it existed."""
    out = {DEFAULT: DEFAULT} | ({NONE: NONE} if student and cfg.train_system == NONE else {})
    texts = prompt_texts(cfg.model) if cfg.eval_systems else {}
    return out | {label: texts[label] for label in cfg.eval_systems}


def rung_jobs(cfg: LadderConfig, rung: Rung, arm: str, teacher: str, seeds) -> list:
    """One rung's numbers jobs, then its students (trait teacher or control) on each seed."""
    systems = eval_systems(cfg)
    spec = arm_spec(cfg, arm, rung.loss)
    data = [numbers_job(cfg, teacher, d, rung.greedy) for d in cfg.data_seeds]
    students = [
        student_job(cfg, spec, teacher, d, t, systems, greedy=rung.greedy)
        for d in cfg.data_seeds
        for t in seeds
    ]
    return data + students


def cell_jobs(cfg: LadderConfig, name: str, arm: str) -> tuple[list, list]:
    """(trait jobs, control jobs) of one cell, numbers before students; the sampled control with its extra
    seeds."""
    rung = RUNGS[name]
    sampled_control = not rung.greedy and rung.loss == "ce"  # the base's sampled numbers, cross-entropy
    ctl_seeds = tuple(dict.fromkeys(cfg.train_seeds + (cfg.control_seeds if sampled_control else ())))
    return (
        rung_jobs(cfg, rung, arm, rung.teacher, cfg.train_seeds),
        rung_jobs(cfg, rung, arm, "control", ctl_seeds),
    )


def ordered_jobs(cfg: LadderConfig) -> list:
    """Every job once, in the order that answers most soonest: rung by rung, its numbers, its trait
    students and its controls at the training seeds; then the sampled control's extra seeds (the seed
    spread the MDE needs); then the distillation controls, which stay at the base by construction."""
    tiers: list[dict] = [{}, {}, {}]
    for name in cfg.rungs:
        for arm in cfg.arms:
            trait, control = cell_jobs(cfg, name, arm)
            if RUNGS[name].loss == "distill" and cfg.distill_control == "base":
                control = []  # read against the base instead: neither its numbers nor its students are needed
            for j in trait + control:
                train = j.params.get("train", {})
                tier = (
                    2
                    if train.get("loss") == "distill" and j in control
                    else 1
                    if j.kind == "student" and train["seed"] not in cfg.train_seeds
                    else 0
                )
                tiers[tier].setdefault(j.name, j)
    seen, out = set(), []
    for tier in tiers:
        out += [j for name, j in tier.items() if name not in seen]
        seen |= set(tier)
    return out


BASE_AS_DISTILL_CONTROL = "base (a distillation control keeps every weight: distill_control_check.json)"


def collect(cfg: LadderConfig, root: Path) -> dict[str, Any]:
    """The finished students of every cell (a cell with a trait student and a control is summarised; the
    others are pending), so that a ladder can be read while it runs."""
    base = finished(root, base_job(cfg, eval_systems(cfg, student=False)))
    cells, pending = {}, []
    for name in cfg.rungs:
        for arm in cfg.arms:
            trait, control = ([j for j in jobs if j.kind == "student"] for jobs in cell_jobs(cfg, name, arm))
            t = [r for r in (finished(root, j) for j in trait) if r is not None]
            c = [(j.name, r) for j, r in ((j, finished(root, j)) for j in control) if r is not None]
            if not c and RUNGS[name].loss == "distill" and cfg.distill_control == "base":
                c = [(BASE_AS_DISTILL_CONTROL, base)] if distill_control_holds(root, arm) else []
            if t and c:
                cells[(name, arm)] = (t, [r for _, r in c], [n for n, _ in c])
            else:
                pending.append(f"{name} / {arm}")
    return {"base": base, "cells": cells, "pending": pending}


def run_rungs(cfg: LadderConfig, root: Path) -> dict[str, Any]:
    """Run every job (finished ones are skipped; `summarise_only` runs none), then collect the cells."""
    if not cfg.summarise_only:
        run_jobs(
            [base_job(cfg, eval_systems(cfg, student=False)), *ordered_jobs(cfg)], root, cfg.executor_config
        )
    return collect(cfg, root)


def components(cfg: LadderConfig, cells: dict) -> dict[str, Components]:
    """Per metric: the residual from the recorded student-versus-control pairs and from the controls
    trained on two seeds or more, whose seed spread is the seed variance (else `cfg.seed_sd_*`, stated).
    The ladder's own trait-versus-control pairs are not used where those exist: a rung that transfers
    varies by question, which is no part of a null's noise."""
    out = {}
    for metric, key in METRICS:
        seeded = {
            tuple(names): per_question(c, "default", metric) for _, c, names in cells.values() if len(c) > 1
        }
        pairs = recorded_pairs(cfg.power_records, key)
        if not pairs and not seeded:
            for trait, control, _ in cells.values():
                b = per_question(control, "default", metric).mean(0)
                pairs += [(x, b) for x in per_question(trait, "default", metric)]
        c = estimate_components(metric, pairs, list(seeded.values()), samples=cfg.samples_per_question)
        if c.seed_var is None:
            sd = getattr(cfg, f"seed_sd_{metric}")
            c = replace(c, seed_var=None if sd is None else sd**2, seed_source=f"assumed (SD {sd})")
        out[metric] = c
    return out


def cell_row(cfg: LadderConfig, name: str, arm: str, cell, comps: dict[str, Components]) -> dict[str, Any]:
    """One (rung, arm) of the table: levels, lifts with CIs over seeds and questions, MDEs, a verdict."""
    trait, control, control_jobs = cell
    vs = versus_control(trait, control, "default")
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
    fixed = control_jobs == [BASE_AS_DISTILL_CONTROL]  # the base: no seed spread of its own
    for metric, diff in (("p_trait", "p_trait_diff"), ("mention", "mention_diff")):
        c = comps[metric]
        # with the seed spread unknown, the MDE from the question spread alone: a floor, and said so
        row[f"{metric}_mde"] = mde(
            c,
            len(trait),
            cfg.n_questions,
            cfg.samples_per_question,
            seed_var=c.seed_var or 0.0,
            control_seeds=len(control),
            fixed_control=fixed,
        )
        row[f"{metric}_mde_is_floor"] = c.seed_var is None
        row |= seed_verdict(c, row[diff], row[f"{diff}_ci"], len(trait), None if fixed else len(control))
    return row


def equal_arm_mdes(cfg: LadderConfig, comps: dict[str, Components]) -> dict[str, dict[str, float]]:
    """Per metric, the MDE of a student against a control with 1 and with 3 seeds each at the ladder's
    evaluation size, from its measured spread: what a null of that design could have seen."""
    q, k = cfg.n_questions, cfg.samples_per_question
    return {m: {str(n): mde(c, n, q, k) for n in (1, 3)} for m, c in comps.items() if c.seed_var is not None}


def summarise(cfg: LadderConfig, runs: dict[str, Any]) -> dict[str, Any]:
    cells = runs["cells"]
    comps = components(cfg, cells)
    ladder_order = sorted(cells.items(), key=lambda kv: (list(RUNGS).index(kv[0][0]), ARMS.index(kv[0][1])))
    rows = [cell_row(cfg, name, arm, cell, comps) for (name, arm), cell in ladder_order]
    first = next((r for r in rows if r["p_trait_transfers"] or r["mention_transfers"]), None)
    return {
        "base": pooled([runs["base"]], "default"),
        "rows": rows,
        "pending": runs["pending"],
        "components": {k: c.to_json() for k, c in comps.items()},
        "mde_equal_arms": equal_arm_mdes(cfg, comps),
        "first_transfer": None if first is None else {k: first[k] for k in ("rung", "arm")},
        "train_system": cfg.train_system,
    }


def prepare_distill_controls(cfg: LadderConfig, root: Path) -> None:
    """Under --check-distill-control, check on the model that a distillation control keeps every weight;
    under --distill-control base, refuse a distillation rung unless this run or an earlier one in --out
    found that. Runs after the plan's gate, so a ladder that does not fit spends nothing."""
    if cfg.check_distill_control:
        lrs = {"lora": cfg.lora_lr, "full": cfg.full_lr}
        check = check_distill_control(cfg.model, {a: lrs[a] for a in cfg.arms}, cfg.rank)
        before = json.loads((root / CHECK_FILE).read_text()) if (root / CHECK_FILE).exists() else {}
        atomic_write_json(root / CHECK_FILE, before | check)  # an arm checked by an earlier run stays
    if cfg.distill_control == "base" and any(RUNGS[r].loss == "distill" for r in cfg.rungs):
        if cfg.train_system != DEFAULT:
            raise InterpError(
                "--distill-control base holds only for students trained under the default prompt, the one "
                "the control teacher wrote under; under --train-system none train the control"
            )
        unproven = [a for a in cfg.arms if not distill_control_holds(root, a)]
        if unproven:
            raise InterpError(
                f"--distill-control base needs a check that a distillation control keeps every weight on "
                f"this model ({unproven}): add --check-distill-control"
            )


def run_ladder(cfg: LadderConfig, root: Path) -> dict:
    """The body under run_study: the distillation controls' check, every job, the summary."""
    prepare_distill_controls(cfg, root)
    return summarise(cfg, run_rungs(cfg, root))


def run(cfg: LadderConfig) -> Path:
    """The ladder as a library call: checks, plan and power, every job, results.json and the figure."""
    check_inputs(cfg)
    plan = ladder_plan(cfg, ordered_jobs(cfg))
    if cfg.plan:
        sys.stdout.write(power_text(cfg, components(cfg, {}), plan) + "\n")
    root = run_study(cfg, "ladder", run_ladder, ladder_figure, plan=plan)
    if not cfg.plan:
        write_report(cfg, root)
    return root


def write_report(cfg: LadderConfig, root: Path) -> Path:
    """report.md beside results.json: the power at the ladder's own spread, the table, the checks."""
    res = json.loads((root / "results.json").read_text())
    comps = {k: Components(**v) for k, v in res["components"].items()}
    check = root / CHECK_FILE
    text = ladder_markdown(
        res,
        power_text(cfg, comps, ladder_plan(cfg, ordered_jobs(cfg))),
        json.loads(check.read_text()) if check.exists() else None,
    )
    return atomic_write_text(root / "report.md", text)
