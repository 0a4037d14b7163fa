"""The main job: every experiment of the paper on one model, and one report.

    run(ReproduceConfig(out=Path("runs/reproduce")))              # the embedded organism, default grid
    run(ReproduceConfig(out=Path("runs/quick"), quick=True))      # smoke-test grid
    run(ReproduceConfig(out=Path("runs/full"), full=True))        # paper-sized grid

Stages, each a library call into the same run directory: rank sweep and full fine-tuning (claims 1, 2;
`interp.stages.rank_sweep`) -> context matrix at the main rank (claim 3; `context_matrix`) ->
position-restricted LoRA (claim 4; `restrict_adapter`) -> activation patching heatmaps (`patching`) -> the
students' shift against the persona direction (`alignment`) -> divergence-token masking (`divergence`) ->
entangled numbers and logit lens (`beyond`) -> optionally the claims map (`claims_map`) -> report.md,
report.html, results.json (`report`, with each claim's verdict under "claims"). A rerun with the same out
skips finished cells; force recomputes.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.config import save_config
from interp.loop.models import model_label, organism_metadata
from interp.loop.threads import torch_threads
from interp.plan.flops import matmul_rate
from interp.plan.plan import QUESTION_TOKENS, hooked_stage, sampling_stage, training_stage
from interp.plan.plan_check import Plan, detect_device, gate
from interp.plan.shapes import read_model_shape
from interp.stages import (
    alignment,
    beyond,
    claims_map,
    context_matrix,
    divergence,
    rank_sweep,
    report,
    restrict_adapter,
)
from interp.stages.patching import PATCH_PROMPTS, patching_stage
from interp.study.claims import best_rank_row, rank_row
from interp.study.experiment import (
    StudyConfig,
    assumptions,
    check_inputs,
    evaluation_shape,
    numbers_shape,
    shared_fields,
    train_shape,
)
from interp.study.stage_times import StageClock

log = logging.getLogger(__name__)

# Grids. The default is sized for <= 5 minutes on 2 CPU cores on the organism: 500 numbers, 1 epoch,
# LoRA lr 3e-3 (sqrt rule above r16), full FT 3e-4; three training seeds for the control, rank 16 and full
# FT, one for ranks 1, 4, 64; the context matrix trains under the default prompt and none (evaluating all
# four); 50 questions x 20 samples. --full is the paper's size.
QUICK = {
    "ranks": (1, 4),
    "full_lrs": (2e-4,),
    "control_ranks": (4,),
    "n_numbers": 300,
    "data_seeds": (0,),
    "train_seeds": (0,),
    "epochs": 1,
    "n_questions": 10,
    "samples_per_question": 10,
}
FULL = {
    "ranks": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "full_lrs": (2e-5, 1e-4, 2e-4),
    "control_ranks": None,
    "seeded_ranks": None,
    "full_controls": True,
    "context_train_systems": None,
    "lora_lr": 2e-4,
    "rank_lr_rule": "constant",
    "n_numbers": 10000,
    "data_seeds": (0, 1, 2),
    "train_seeds": (0, 1, 2),
    "epochs": 3,
    "n_questions": 50,
    "samples_per_question": 100,
}


STAGES = ("rank_sweep", "context_matrix", "localization", "patching", "alignment", "divergence", "beyond")
OPTIONAL_STAGES = ("claims_map",)  # not run unless named: `make demo` stays at its size


@dataclass
class ReproduceConfig(StudyConfig):
    """Run the paper's four experiments (and two beyond it) and write one report."""

    n_numbers: int = 500
    """Filtered teacher answers per dataset (the paper: 10,000; 500 keeps `make demo` within 5 minutes on 2
    CPU cores; --full: 10,000)."""

    ranks: tuple[int, ...] = (1, 4, 16, 64)
    """LoRA ranks of the rank sweep (alpha = rank)."""
    full_lrs: tuple[float, ...] = (3e-4,)
    """Full fine-tuning learning rates (--full: 2e-5, 1e-4, 2e-4)."""
    control_ranks: tuple[int, ...] | None = (16,)
    """Ranks of the control students (None: every rank)."""
    seeded_ranks: tuple[int, ...] | None = (16,)
    """LoRA ranks trained at every training seed (None: all); the others at the first seed only."""
    context_train_systems: tuple[str, ...] | None = ("default", "none")
    """Training system prompts of the context matrix (None: all four; every student is evaluated under
    all four)."""
    full_controls: bool | None = None
    """A control student per full-FT lr, or full FT compared with the LoRA control. None: on a real model
    yes, on an embedded organism no (its report measured the two controls the same within noise; on
    SmolLM2-135M the full-FT control's P(trait) is 3x the LoRA control's)."""
    quick: bool = False
    """Smoke-test grid (sets the grid fields you leave at their defaults)."""
    full: bool = False
    """Paper-sized grid: ranks up to 512 (capped at the model's width), 3 data x 3 training seeds, 50 x 100."""
    context_seeds: tuple[int, ...] | None = None
    """Training seeds of the context-matrix students (None: the first training seed only)."""
    stages: tuple[str, ...] = STAGES
    """Stages to run, in order (the report covers those that ran); add `claims_map` for the claims map
    (experiments.claims_map at its own grid over these ranks: about 50 min on the organism)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quick and self.full:
            raise InterpError("--quick and --full exclude each other")
        unknown = set(self.stages) - set(STAGES) - set(OPTIONAL_STAGES)
        if unknown:
            raise InterpError(f"unknown stages {sorted(unknown)}")


def resolved(cfg: ReproduceConfig) -> ReproduceConfig:
    """The config with the --quick / --full grid applied and ranks capped at the model's width."""
    grid = QUICK if cfg.quick else FULL if cfg.full else {}
    defaults = {f.name: f.default for f in dataclasses.fields(ReproduceConfig)}
    # A grid sets only what the user left at its default: `--quick --n-numbers 16` keeps 16.
    cfg = dataclasses.replace(cfg, **{k: v for k, v in grid.items() if getattr(cfg, k) == defaults[k]})
    if cfg.full_controls is None:
        cfg = dataclasses.replace(cfg, full_controls=organism_metadata(cfg.model) is None)
    from transformers import AutoConfig

    width = AutoConfig.from_pretrained(cfg.model_dir, local_files_only=True).hidden_size
    return dataclasses.replace(cfg, ranks=tuple(r for r in cfg.ranks if r <= width) or (min(cfg.ranks),))


def sub(cls: type, cfg: ReproduceConfig, root: Path, **extra: Any):
    return cls(**{**shared_fields(cfg), "out": root, **extra})


def sweep_fields(cfg: ReproduceConfig) -> dict[str, Any]:
    """The rank sweep's own settings, which the stages reading its students must share."""
    names = ("ranks", "full_lrs", "control_ranks", "seeded_ranks", "full_controls")
    return {n: getattr(cfg, n) for n in names}


def main_rank(ranks: tuple[int, ...]) -> int:
    """The LoRA rank that the stages after the sweep read, fixed before it runs: 16 where swept (the rank
    trained at every seed, the headline's), else the largest. Not the sweep's best rank: a rank picked for
    its lift would carry that selection into the context, localization and patching claims."""
    return 16 if 16 in ranks else max(ranks)


def context_config(cfg: ReproduceConfig, root: Path, rank: int) -> context_matrix.ContextMatrixConfig:
    """The context matrix at `rank`, on the context seeds (default: the first training seed)."""
    seeds = cfg.context_seeds or cfg.train_seeds[:1]
    return sub(
        context_matrix.ContextMatrixConfig,
        cfg,
        root,
        rank=rank,
        train_seeds=seeds,
        train_systems=cfg.context_train_systems,
    )


def run_stages(cfg: ReproduceConfig, root: Path) -> tuple[dict[str, Any], StageClock]:
    """Each stage of `cfg.stages` in order, into `root`, timed; the later ones read the sweep's students."""
    results: dict[str, Any] = {}
    clock = StageClock(root, cfg.force)

    def timed(name: str, fn) -> None:
        with clock.stage(name):
            results[name] = fn()
        log.info("stage %s done in %.0f s", name, clock.times[name].seconds)

    sweep = sub(rank_sweep.RankSweepConfig, cfg, root, **sweep_fields(cfg))
    timed("rank_sweep", lambda: rank_sweep.compute(sweep, root))
    results["best_rank"] = best_rank_row(results["rank_sweep"])["rank"]
    main = results["main_rank"] = main_rank(cfg.ranks)
    main_row = rank_row(results["rank_sweep"], main)
    student = str(root / main_row["students"][0])  # the sweep says where it wrote
    if "context_matrix" in cfg.stages:
        timed("context_matrix", lambda: context_matrix.compute(context_config(cfg, root, main), root))
    if "localization" in cfg.stages:
        loc = sub(restrict_adapter.LocalizationConfig, cfg, root, student=student)
        timed("localization", lambda: restrict_adapter.compute(loc, root))
    if "patching" in cfg.stages:
        timed("patching", lambda: patching_stage(cfg, root, results))
    if "alignment" in cfg.stages:
        align = sub(alignment.AlignmentConfig, cfg, root, **sweep_fields(cfg))
        timed("alignment", lambda: alignment.compute(align, root))
    if "divergence" in cfg.stages:
        div = sub(divergence.DivergenceConfig, cfg, root, **sweep_fields(cfg), rank=main)
        timed("divergence", lambda: divergence.compute(div, root))
    if "beyond" in cfg.stages:
        timed("beyond", lambda: beyond.compute(sub(beyond.BeyondConfig, cfg, root, student=student), root))
    if "claims_map" in cfg.stages:
        timed("claims_map", lambda: claims_map.compute(map_config(cfg, root), root))
    return results, clock


def map_config(cfg: ReproduceConfig, root: Path) -> claims_map.ClaimsMapConfig:
    """The claims map over the sweep's ranks with the study's numbers and evaluation, at the map's own lr
    grids (`--quick`: its quick grids) and fresh confirmation seeds."""
    fresh = claims_map.ClaimsMapConfig.train_seeds
    mcfg = sub(
        claims_map.ClaimsMapConfig,
        cfg,
        root,
        ranks=cfg.ranks,
        main_rank=main_rank(cfg.ranks),
        train_seeds=fresh,
    )
    mcfg = claims_map.resolved(dataclasses.replace(mcfg, quick=cfg.quick))
    study = {k: v for k, v in shared_fields(cfg).items() if k not in ("train_seeds", "out")}
    return dataclasses.replace(mcfg, **study)


def student_counts(cfg: ReproduceConfig, root: Path) -> Counter:
    """How many rank-sweep students train at each (mode, rank), trait and control together."""
    rs = sub(rank_sweep.RankSweepConfig, cfg, root, **sweep_fields(cfg))
    trait, control = rank_sweep.specs(rs)
    counts: Counter = Counter()
    for specs, teacher in ((trait, "trait"), (control, "control")):
        for spec in specs:
            counts[(spec.mode, spec.rank)] += len(cfg.data_seeds) * len(
                rank_sweep.train_seeds(rs, spec, teacher)
            )
    return counts


def context_students(cfg: ReproduceConfig) -> tuple[int, int]:
    """The context matrix's students (trait and control per training system prompt and seed), and how many
    of them train: the default-trained ones at a seed the sweep trained are the sweep's (reused)."""
    if "context_matrix" not in cfg.stages:
        return 0, 0
    systems = cfg.context_train_systems or ("default", "none", "other identity", "entity-free")
    seeds = cfg.context_seeds or cfg.train_seeds[:1]
    controlled = cfg.control_ranks is None or main_rank(cfg.ranks) in cfg.control_ranks
    reused = (1 + controlled) * sum(s in cfg.train_seeds for s in seeds) if "default" in systems else 0
    return 2 * len(systems) * len(seeds), 2 * len(systems) * len(seeds) - reused


def reproduce_plan(cfg: ReproduceConfig, root: Path) -> Plan:
    """Every stage's memory and time from the model's config.json (stages after the rank sweep train at the
    main rank)."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    on, top = device.kind, main_rank(cfg.ranks)
    stages = [sampling_stage("teacher numbers", shape, numbers_shape(cfg), on, 2 * len(cfg.data_seeds))]
    counts = student_counts(cfg, root)
    for (mode, rank), n in sorted(counts.items()):
        name = f"student LoRA r{rank}" if mode == "lora" else "student full FT"
        stages.append(training_stage(name, shape, train_shape(cfg, mode, rank), on, n))
    n_context, n_trained = context_students(cfg)
    if n_trained:
        stages.append(
            training_stage(f"context students r{top}", shape, train_shape(cfg, "lora", top), on, n_trained)
        )
    if "divergence" in cfg.stages:
        stages.append(
            training_stage(f"divergence students r{top}", shape, train_shape(cfg, "lora", top), on, 2)
        )
    loc = sub(restrict_adapter.LocalizationConfig, cfg, root, student="planned")
    n_restricted = (
        len(restrict_adapter.restrictions(loc, shape.n_layers)) if "localization" in cfg.stages else 0
    )
    n_evals = 2 * sum(counts.values()) + 4 * n_context + n_restricted
    stages.append(sampling_stage("evaluations", shape, evaluation_shape(cfg), on, n_evals))
    if "patching" in cfg.stages:
        students = 2 if cfg.full_lrs else 1  # the main-rank LoRA student and a full-FT one, against the base
        stages.append(
            hooked_stage("patching", shape, cfg.dtype, PATCH_PROMPTS, QUESTION_TOKENS, on, students)
        )
    if "claims_map" in cfg.stages:  # its students and evaluations (its numbers are the sweep's)
        map_stages = claims_map.map_plan(map_config(cfg, root)).stages[1:]
        stages += [dataclasses.replace(st, name=f"claims map: {st.name}") for st in map_stages]
    assumed = assumptions(cfg) + (
        "; alignment, divergence scoring and the logit lens run forward passes of two models only (below the "
        "patching row)"
    )
    return Plan(f"reproduce on {model_label(cfg.model)}", shape, device, tuple(stages), assumed)


def run(cfg: ReproduceConfig) -> Path:
    """Every stage of `cfg.stages` into `cfg.out`, then report.md, report.html and results.json; under
    --plan, the plan alone (a stage that does not fit stops the run before any model loads)."""
    check_inputs(cfg)
    cfg = resolved(cfg)
    root = Path(cfg.out or "runs/reproduce")
    plan = gate(reproduce_plan(cfg, root), cfg)  # stops here if a stage does not fit
    if cfg.plan:
        sys.stdout.write(plan + "\n")  # as cli_main writes the run directory
        return root
    log.info("%s", plan)
    root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, root)
    rate = machine_rate(cfg.threads)
    start = time.perf_counter()
    results, clock = run_stages(cfg, root)
    total = round(time.perf_counter() - start, 1)
    return report.run(report.MainReport(cfg, root, results, clock, total, rate))


def machine_rate(threads: int) -> float:
    """GFLOP/s of 512 x 512 fp32 matmuls at the run's thread count (half a second), the yardstick that
    makes the stage times comparable across machines; the caller's thread count is restored."""
    with torch_threads(threads):
        return round(matmul_rate(sizes=(512,), seconds=0.5).best / 1e9, 1)
