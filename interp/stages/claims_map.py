"""The claims map: each of the paper's claims across the training choices the field disputes.

    run(ClaimsMapConfig(out=Path("runs/claims_map")))                          # the default organism
    run(ClaimsMapConfig(model="organism-tied", out=Path("runs/claims_map_tied")))
    run(ClaimsMapConfig(quick=True, out=Path("runs/claims_map_quick")))        # a smoke-sized map

Every student is trained on the trait teacher's numbers against a **control** trained the same way (arm,
lr, optimizer, precision, layers, seed) on the base model's own numbers; a cell's **lift** is student
minus control (mention rate, paired over questions). Axes:

* **lr per arm** - each arm (the LoRA ranks, full FT) over its own lr grid on the screen seed; the best lr
  (largest lift) is then confirmed on fresh seeds, beside the fixed lr every arm shares (`lora_lr`,
  `full_lr`). The inverted-U verdict is read on both curves.
* **optimizer** - SGD with momentum 0.9 and without, and Muon, each over its own lr grid, for the main
  rank and full FT; the best lr of each is confirmed (AdamW's is the lr axis's).
* **precision** - the main rank and full FT at AdamW's best lr in pure bf16 (bf16 weights and optimizer
  states) and in bf16 autocast with fp32 master weights (fp32 is the lr axis's cell); and full FT at the
  smallest lr of its grid (the paper's regime) in fp32 and in both.
* **layers** - the main rank at AdamW's best lr with LoRA on one layer at a time, and with the first k
  layers frozen.

Every student also records its final loss, its weight-change norm and its shift's cosine with the persona
direction, so that arms compare at matched loss or matched update norm. Jobs are digests of what they
compute: a killed map resumes where it stopped. Verdicts: `interp.study.claims` (strict and effect size).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.chat import DEFAULT, NONE
from interp.loop.models import model_label, resolve_model_dir
from interp.plan.plan import sampling_stage, training_stage
from interp.plan.plan_check import Plan, detect_device
from interp.plan.shapes import read_model_shape
from interp.study import claims_map as M
from interp.study.experiment import (
    StudyConfig,
    assumptions,
    check_inputs,
    evaluation_shape,
    numbers_shape,
    run_study,
    train_shape,
)
from interp.study.jobs import student_job
from interp.study.plots import claims_map_figure
from interp.study.sweep import run_jobs, run_numbers_jobs

log = logging.getLogger(__name__)
EVAL_SYSTEMS = {"default": DEFAULT, "none": NONE}

# --quick: every axis once, at smoke size (526-599 s measured on 2 cores without native bf16: docs/claims_map.md).
QUICK = {
    "ranks": (4, 16),
    "lora_lrs": (1e-3, 1e-2),
    "full_lrs": (1e-4, 1e-3),
    "sgd_lrs": (0.1, 1.0),
    "sgd_plain_lrs": (1.0, 10.0),
    "muon_lrs": (1e-3, 1e-2),
    "train_seeds": (1,),
    "n_numbers": 300,
    "n_questions": 10,
    "samples_per_question": 5,
    "layers": (0,),
    "freeze": (1,),
}


@dataclass
class ClaimsMapConfig(StudyConfig):
    """Each claim across lr per arm, optimizer, precision and layers, every student against its control."""

    ranks: tuple[int, ...] = (1, 4, 16, 64)
    """LoRA arms (alpha = rank); full fine-tuning is the last arm."""
    main_rank: int = 16
    """The LoRA rank of the optimizer, precision and layer axes (must be among `ranks`)."""
    lora_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    """LoRA lr grid (AdamW and Muon; 100x). `lora_lr` is the fixed lr of the fixed-lr curve."""
    full_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
    """Full fine-tuning lr grid (AdamW and Muon; 100x). `full_lr` is its fixed lr."""
    sgd_lrs: tuple[float, ...] = (0.01, 0.1, 1.0)
    """SGD (momentum 0.9) lr grid, every arm (100x)."""
    sgd_plain_lrs: tuple[float, ...] = (0.1, 1.0, 10.0)
    """Plain SGD (no momentum) lr grid, every arm: 10x the momentum grid, the same effective step."""
    muon_lrs: tuple[float, ...] | None = None
    """Muon lr grid (RMS matched to AdamW); None: the AdamW grid of each arm."""
    optimizers: tuple[str, ...] = ("sgd-m0.9", "sgd-m0", "muon")
    """Optimizers besides AdamW on the optimizer axis."""
    precisions: tuple[str, ...] = ("bf16-pure", "bf16-mixed")
    """Precisions besides fp32 on the precision axis."""
    precision_at_low_full_lr: bool = True
    """Also compare fp32 and each precision for full FT at the smallest lr of `full_lrs` (the paper's full-FT
    regime, where pure bf16 rounds updates away), not only at AdamW's best lr."""
    precision_at_best_lr: bool = True
    """Also run each precision at each arm's (the main rank's and full FT's) best lr."""
    layers: tuple[int, ...] | None = None
    """Single LoRA layers of the layer axis (None: every layer)."""
    freeze: tuple[int, ...] | None = None
    """k of the 'first k layers frozen' students (None: 1 to n_layers - 1)."""
    axes: tuple[str, ...] = ("lr", "optimizer", "precision", "layers")
    """Which axes to map."""
    screen_seed: int = 0
    """Training seed of the lr screens (the confirmations use `train_seeds`, which must not include it)."""
    train_seeds: tuple[int, ...] = (1, 2, 3)
    """Fresh training seeds on which every picked cell is confirmed."""
    quick: bool = False
    """Smoke-sized map (ranks 4 and 16, two lrs per grid, one confirmation seed, 300 numbers)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.main_rank not in self.ranks:
            raise InterpError(f"--main-rank {self.main_rank} must be one of --ranks {self.ranks}")
        if self.screen_seed in self.train_seeds:
            raise InterpError("confirmation seeds (--train-seeds) must be fresh: drop the --screen-seed")
        unknown = set(self.axes) - set(M.AXES) | set(self.optimizers) - set(M.OPTIMIZERS)
        if unknown | set(self.precisions) - set(M.PRECISIONS):
            raise InterpError(f"unknown axes/optimizers/precisions {sorted(unknown)}")


# --quick where bf16 matmuls are slow (a CPU without native bf16 ran them at about 1% of fp32, 50-70 s per
# organism student): the precision axis keeps only its sharpest test, full FT in pure bf16 against fp32 at
# the smallest full-FT lr, where the paper's bf16 rounds updates away.
QUICK_SLOW_BF16 = {"precisions": ("bf16-pure",), "precision_at_best_lr": False}
SLOW_BF16 = 0.25  # a bf16 / fp32 matmul rate below this counts as slow


def resolved(cfg: ClaimsMapConfig) -> ClaimsMapConfig:
    """The config with the --quick grid applied (where the user left a field at its default), trimmed on a
    device whose bf16 matmuls are slow (`QUICK_SLOW_BF16`, logged)."""
    if not cfg.quick:
        return cfg
    defaults = ClaimsMapConfig()
    quick = dict(QUICK)
    factor, why = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops).low_precision_factor()
    if "precision" in cfg.axes and factor < SLOW_BF16:
        log.info(
            "--quick: bf16 at %.3gx fp32 here (%s): precision axis trimmed to %s",
            factor,
            why,
            QUICK_SLOW_BF16,
        )
        quick |= QUICK_SLOW_BF16
    return replace(cfg, **{k: v for k, v in quick.items() if getattr(cfg, k) == getattr(defaults, k)})


def n_layers(cfg: ClaimsMapConfig) -> int:
    return int(json.loads((resolve_model_dir(cfg.model) / "config.json").read_text())["num_hidden_layers"])


def run_cells(cfg: ClaimsMapConfig, root: Path, cells: list[M.Cell], seeds: tuple[int, ...]) -> list[dict]:
    """Train and evaluate every cell's student and control at each seed; one row per cell."""
    jobs = [
        student_job(cfg, c.spec, teacher, d, t, EVAL_SYSTEMS, measure=True)
        for c in cells
        for teacher in ("trait", "control")
        for d in cfg.data_seeds
        for t in seeds
    ]
    flat = run_jobs(jobs, root, cfg.executor_config)
    per = len(cfg.data_seeds) * len(seeds)
    return [
        M.cell_row(c, flat[2 * i * per : (2 * i + 1) * per], flat[(2 * i + 1) * per : (2 * i + 2) * per])
        for i, c in enumerate(cells)
    ]


def compute(cfg: ClaimsMapConfig, root: Path) -> dict[str, Any]:
    """Screen the lr grids on one seed, pick each best lr, confirm the picked cells on fresh seeds."""
    filter_pass = run_numbers_jobs(cfg, root)
    grid = M.Grid.from_config(cfg, n_layers(cfg))
    screen = run_cells(cfg, root, grid.screen_cells(), (cfg.screen_seed,))
    confirm = run_cells(cfg, root, grid.confirm_cells(screen), cfg.train_seeds)
    return {"claims_map": M.summarize(grid, screen, confirm), "filter_pass": filter_pass}


def map_plan(cfg: ClaimsMapConfig) -> Plan:
    """Memory and time of every student the map can train, counted by arm (`Grid.planned_students`)."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    counts = M.Grid.from_config(cfg, shape.n_layers).planned_students(
        len(cfg.data_seeds), len(cfg.train_seeds)
    )
    stages = [
        sampling_stage("teacher numbers", shape, numbers_shape(cfg), device.kind, 2 * len(cfg.data_seeds))
    ]
    for (mode, rank, precision), n in sorted(counts.items()):
        name = f"student LoRA r{rank}" if mode == "lora" else "student full FT"
        name += "" if precision == "auto" else f" {precision}"
        t = replace(train_shape(cfg, mode, rank), precision=precision)
        stages.append(training_stage(name, shape, t, device.kind, n))
    evals = 2 * sum(counts.values())  # every student under the default prompt and under none
    stages.append(sampling_stage("evaluations", shape, evaluation_shape(cfg), device.kind, evals))
    assumed = assumptions(cfg) + "; an arm's best and fixed lr counted apart"
    return Plan(f"claims map on {model_label(cfg.model)}", shape, device, tuple(stages), assumed)


def run(cfg: ClaimsMapConfig) -> Path:
    """The claims map in `cfg.out` (--quick grid applied): config.json, results.json, the figure."""
    check_inputs(cfg)
    cfg = resolved(cfg)
    figure = partial(claims_map_figure, model=model_label(cfg.model))
    return run_study(cfg, "claims_map", compute, figure, plan=map_plan(cfg))
