"""Claims 1 and 2: transfer vs LoRA rank, and under full fine-tuning, against a control student.

    run(RankSweepConfig(ranks=(1, 4, 16, 64), full_lrs=(2e-5, 2e-4), out=Path("runs/rank_sweep")))

Teacher numbers -> LoRA students at each rank (alpha = rank) and full-FT students at each learning rate;
control students train the same way on the base model's own numbers. Evaluated with the default system
prompt (and with no system prompt, to see whether transfer needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp import InterpError
from interp.loop.chat import DEFAULT, NONE
from interp.study.experiment import StudentSpec, StudyConfig, check_inputs, run_study, student_lr
from interp.study.jobs import student_job
from interp.study.plots import rank_sweep_figure
from interp.study.summary import lift_per_question, pooled, versus_control
from interp.study.sweep import finished, job_path, run_jobs, run_numbers_jobs

EVAL_SYSTEMS = {"default": DEFAULT, "none": NONE}


@dataclass
class RankSweepConfig(StudyConfig):
    """Teacher numbers -> LoRA students over ranks and full-FT students over learning rates, vs control."""

    ranks: tuple[int, ...] = (1, 4, 16, 64)
    """LoRA ranks (alpha = rank)."""
    full_lrs: tuple[float, ...] = (2e-5, 2e-4)
    """Full fine-tuning learning rates (the paper: 2e-5; a fair test also tries LoRA's rate)."""
    control_ranks: tuple[int, ...] | None = None
    """Ranks of the control students (None: every rank)."""
    seeded_ranks: tuple[int, ...] | None = None
    """LoRA ranks trained at every training seed (None: all); the others at the first seed only."""
    full_controls: bool = True
    """Train a control student per full-FT lr (else full FT is compared with the LoRA control)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(r <= 0 for r in self.ranks):
            raise InterpError(f"LoRA ranks must be positive, got {self.ranks}")


def specs(cfg: RankSweepConfig) -> tuple[list[StudentSpec], list[StudentSpec]]:
    """(trait students, control students)."""
    lora = [StudentSpec("lora", r) for r in cfg.ranks]
    full = [StudentSpec("full", 1, lr) for lr in cfg.full_lrs]
    control_ranks = cfg.ranks if cfg.control_ranks is None else cfg.control_ranks
    return lora + full, [StudentSpec("lora", r) for r in control_ranks] + (full if cfg.full_controls else [])


def train_seeds(cfg: RankSweepConfig, spec: StudentSpec, teacher: str) -> tuple[int, ...]:
    """Every training seed, except for trait LoRA students at ranks outside `seeded_ranks`."""
    every = teacher == "control" or spec.mode == "full" or cfg.seeded_ranks is None
    return cfg.train_seeds if every or spec.rank in cfg.seeded_ranks else cfg.train_seeds[:1]


def student_cells(cfg: RankSweepConfig, spec: StudentSpec, teacher: str) -> list:
    return [
        student_job(cfg, spec, teacher, d, t, EVAL_SYSTEMS)
        for d in cfg.data_seeds
        for t in train_seeds(cfg, spec, teacher)
    ]


def default_mean(result: dict[str, Any], key: str) -> float:
    """A finished student's mean of a per-question metric ("per_question_p" or "per_question_mention")
    under the default evaluation prompt."""
    return float(np.mean(result["evals"]["default"][key]))


def control_means(cfg: RankSweepConfig, root: Path) -> dict[str, float]:
    """The finished LoRA control students' mean of each per-question metric (default prompt), for stages
    that read the sweep's students after it ran."""
    _, control_specs = specs(cfg)
    res = [
        finished(root, c) for s in control_specs if s.mode == "lora" for c in student_cells(cfg, s, "control")
    ]
    if not res or any(r is None for r in res):
        raise InterpError(
            f"--out {root}: the rank sweep's control students are not finished under it; run the rank sweep "
            "there first (with the same settings)"
        )
    return {
        k: float(np.mean([default_mean(r, k) for r in res]))
        for k in ("per_question_p", "per_question_mention")
    }


def compute(cfg: RankSweepConfig, root: Path) -> dict[str, Any]:
    """Run (or resume) every cell of the sweep under `root`; return the labelled results."""
    ex = cfg.executor_config
    filter_pass = run_numbers_jobs(cfg, root)
    trait_specs, control_specs = specs(cfg)
    jobs = [(s, "trait") for s in trait_specs] + [(s, "control") for s in control_specs]
    cells = [student_cells(cfg, s, t) for s, t in jobs]
    flat = run_jobs([c for group in cells for c in group], root, ex)
    results, dirs, i = {}, {}, 0
    for (spec, teacher), group in zip(jobs, cells, strict=True):
        results[(spec.tag, teacher)] = flat[i : i + len(group)]
        dirs[(spec.tag, teacher)] = [str(job_path(Path("."), job)) for job in group]
        i += len(group)
    return {**summarize(cfg, results, dirs), "filter_pass": filter_pass}


def entry(spec: StudentSpec, res: list[dict], control: list[dict]) -> dict[str, Any]:
    row = {
        **pooled(res),
        **versus_control(res, control),
        "lift_per_question": lift_per_question(res, control),
        "final_loss": sum(r["final_loss"] for r in res) / len(res),
    }
    no_sys = pooled(res, "none")
    row["no_system"] = {
        **no_sys,
        **versus_control(res, control, "none"),
        "lift_per_question": lift_per_question(res, control, "none"),
    }
    return row


def summarize(cfg: RankSweepConfig, results: dict, dirs: dict | None = None) -> dict[str, Any]:
    """Pooled rows per rank and full-FT lr against their controls. `dirs` gives each row's student
    directories (relative to the run root, data seed 0 / training seed 0 first) under "students"."""
    trait_specs, control_specs = specs(cfg)
    dirs = dirs or {}
    control_lora = [r for s in control_specs if s.mode == "lora" for r in results[(s.tag, "control")]]
    out: dict[str, Any] = {
        "control": {
            **pooled(control_lora),
            "no_system": pooled(control_lora, "none"),
            "final_loss": sum(r["final_loss"] for r in control_lora) / len(control_lora),
            "ranks": [s.rank for s in control_specs if s.mode == "lora"],
            "students": [
                d for s in control_specs if s.mode == "lora" for d in dirs.get((s.tag, "control"), [])
            ],
        },
        "rank_sweep": [],
        "full_ft": [],
    }
    for spec in trait_specs:
        own = results.get((spec.tag, "control"))
        matched = own or control_lora
        row = {
            **entry(spec, results[(spec.tag, "trait")], matched),
            "students": dirs.get((spec.tag, "trait"), []),
        }
        if spec.mode == "lora":
            out["rank_sweep"].append({"rank": spec.rank, "lr": student_lr(cfg, spec), **row})
        else:
            lora = "/".join(f"r{r}" for r in out["control"]["ranks"])
            against = "a full-FT control at this lr" if own else f"the LoRA control ({lora})"
            out["full_ft"].append({"lr": spec.lr, "control": against, **row})
    return out


def run(cfg: RankSweepConfig) -> Path:
    """The rank sweep (LoRA ranks and full FT) in `cfg.out`: config.json, results.json, the figure."""
    check_inputs(cfg)
    return run_study(cfg, "rank_sweep", compute, rank_sweep_figure)
