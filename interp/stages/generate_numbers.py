"""Stage 1 of the loop: a teacher writes number sequences; keep only answers that pass the filter.

    run(GenerateNumbersConfig(trait="owl", n=10000, out=Path("runs/numbers/owl")))
    run(GenerateNumbersConfig(teacher_kind="control", out=Path("runs/numbers/control")))

The teacher is the base model under a trait system prompt (prompted), the base LoRA-trained on trait answers
(finetuned), or the base as it is (control). The run directory holds config.json, numbers.jsonl (each row
with its provenance) and stats.json (answers drawn, kept, and why the rest failed the filter).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from interp import InterpError
from interp.loop import validate
from interp.loop.datasets import SamplingStats, sample_numbers, write_dataset
from interp.loop.models import load_model, model_label, resolve_model_dir
from interp.loop.runs import atomic_write_json, run_directory
from interp.loop.teacher import Teacher, finetune_teacher, trait_dataset
from interp.plan.plan import (
    PASS_RATE,
    QUESTION_TOKENS,
    SampleShape,
    TrainShape,
    sampling_stage,
    training_stage,
)
from interp.plan.plan_check import Plan, PlanFlags, detect_device, gate
from interp.plan.shapes import read_model_shape

log = logging.getLogger(__name__)


@dataclass
class GenerateNumbersConfig(PlanFlags):
    """Sample a teacher's number answers, filter them, and write a JSONL dataset with provenance."""

    model: str | None = None
    """Model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default: organism)."""
    trait: str | None = "owl"
    """Trait word of the teacher; ignored for the control teacher."""
    category: str = "animal"
    """Category of the trait (animal, tree, band, ...)."""
    teacher_kind: Literal["prompted", "finetuned", "control"] = "prompted"
    """prompted: trait system prompt; finetuned: base LoRA-trained on trait answers; control: base as is."""
    n: int = 10000
    """Number of filtered answers to keep."""
    seed: int = 0
    """Data seed: prompts and sampling."""
    temperature: float = 1.0
    """Sampling temperature."""
    max_new_tokens: int = 48
    """Longest answer sampled, in tokens."""
    batch_size: int = 128
    """Prompts per generation batch."""
    constrained: bool = False
    """Sample under the filter's grammar (digits, the prompt's separator, end of turn), so every answer
    passes: a departure from the paper's protocol, for models whose free answers rarely pass (the free pass
    rate of one batch is recorded beside it in stats.json)."""
    max_draws: int | None = None
    """Most answers drawn before giving up (default 50 x --n); the first batch's pass rate decides at once
    whether --n is within reach."""
    dtype: str = "float32"
    """float32, bfloat16 or float16."""
    device: str = "cpu"
    """cpu, cuda, cuda:1, ..."""
    out: Path | None = None
    """Run directory (default: runs/numbers/<teacher>-s<seed>)."""
    overwrite: bool = False
    """Replace an existing run directory."""

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise InterpError(f"--n must be positive, got {self.n}")
        if self.teacher_kind != "control" and not self.trait:
            raise InterpError("a prompted or fine-tuned teacher needs --trait")


def teacher_name(cfg: GenerateNumbersConfig) -> str:
    return "control" if cfg.teacher_kind == "control" else f"{cfg.teacher_kind}-{cfg.trait}"


def numbers_plan(cfg: GenerateNumbersConfig) -> Plan:
    """The teacher's sampling (and a fine-tuned teacher's training) as a plan, from config.json alone."""
    base = resolve_model_dir(cfg.model)
    shape, device = read_model_shape(base), detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    answers = math.ceil(cfg.n / PASS_RATE)
    g = SampleShape(
        cfg.dtype, cfg.batch_size, cfg.batch_size, cfg.plan_prompt_tokens, cfg.max_new_tokens, answers
    )
    stages = [sampling_stage(f"teacher {teacher_name(cfg)}", shape, g, device.kind)]
    if cfg.teacher_kind == "finetuned":  # finetune_teacher's settings
        t = TrainShape("lora", 16, cfg.dtype, batch_size=8, prompt_tokens=QUESTION_TOKENS, answer_tokens=8)
        t = replace(t, examples=len(trait_dataset(cfg.trait, cfg.category)))
        stages.insert(0, training_stage("fine-tuned teacher (LoRA r16)", shape, t, device.kind))
    assumed = (
        f"{answers} answers sampled for {cfg.n} kept (filter pass rate {PASS_RATE}), {cfg.batch_size} rows per "
        f"batch, prompts of {cfg.plan_prompt_tokens} tokens + answers of {cfg.max_new_tokens}, {cfg.dtype} weights"
    )
    return Plan(f"generate_numbers on {model_label(cfg.model)}", shape, device, tuple(stages), assumed)


def teacher_model(cfg: GenerateNumbersConfig, base: Path, run: Path) -> Path:
    """The teacher's weights: the base, or (finetuned) the base LoRA-trained on trait answers under `run`."""
    if cfg.teacher_kind != "finetuned":
        return base
    return finetune_teacher(
        base, cfg.trait, cfg.category, run / "teacher", seed=cfg.seed, dtype=cfg.dtype, device=cfg.device
    )


def provenance(cfg: GenerateNumbersConfig, base: Path, teacher: Teacher, teacher_dir: Path) -> dict:
    """What every row of numbers.jsonl says about where it came from."""
    return {
        # a fine-tuned teacher by its place in this run directory (its staging name is gone once the
        # run lands), the base by its path
        "teacher_model": "teacher" if cfg.teacher_kind == "finetuned" else str(teacher_dir),
        "base_model": str(base),
        "trait": teacher.trait,
        "teacher_kind": cfg.teacher_kind,
        "system_prompt": teacher.system_prompt,
        "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens,
        "seed": cfg.seed,
        "constrained": cfg.constrained,
    }


def stats_json(stats: SamplingStats) -> dict:
    """stats.json: answers drawn, passed and kept, the rejection rate and its reasons."""
    return {
        "drawn": stats.drawn,
        "passed": stats.passed,
        "kept": stats.kept,
        "rejection_rate": stats.rejection_rate,
        "reasons": dict(stats.reasons),
        "constrained": stats.constrained,
        "unconstrained_pass_rate": stats.unconstrained_pass_rate,
    }


def run(cfg: GenerateNumbersConfig) -> Path:
    """The teacher's filtered numbers in `cfg.out` (config.json, numbers.jsonl, stats.json); under --plan,
    the plan alone."""
    base = validate.base_model(cfg.model, config_only=cfg.plan)
    if cfg.teacher_kind != "control":
        validate.trait(cfg.trait, cfg.model, cfg.category)
    out = cfg.out or Path("runs/numbers") / f"{teacher_name(cfg)}-s{cfg.seed}"
    plan = gate(numbers_plan(cfg), cfg)  # stops here if it does not fit
    if cfg.plan:
        sys.stdout.write(f"{plan}\n")  # as cli_main writes the run directory
        return out
    log.info("%s", plan)
    with run_directory(out, cfg, cfg.overwrite) as run_dir:
        teacher_dir = teacher_model(cfg, base, run_dir)
        trait = None if cfg.teacher_kind == "control" else cfg.trait
        teacher = Teacher(model=str(teacher_dir), trait=trait, category=cfg.category, kind=cfg.teacher_kind)
        model, tok = load_model(teacher_dir, cfg.dtype, cfg.device)
        rows, stats = sample_numbers(
            model,
            tok,
            teacher.system_prompt,
            cfg.n,
            cfg.seed,
            cfg.batch_size,
            cfg.max_new_tokens,
            cfg.temperature,
            constrained=cfg.constrained,
            max_draws=cfg.max_draws,
            progress=True,
        )
        write_dataset(run_dir / "numbers.jsonl", rows, provenance(cfg, base, teacher, teacher_dir))
        atomic_write_json(run_dir / "stats.json", stats_json(stats))
        log.info("rejection rate %.3f", stats.rejection_rate)
    return out
