"""Stage 2 of the loop: fine-tune a student (LoRA at any rank, or full fine-tuning) on a teacher's numbers.

    run(TrainStudentConfig(dataset=Path("runs/numbers/prompted-owl-s0/numbers.jsonl"), rank=8))
    run(TrainStudentConfig(dataset=Path("runs/numbers/prompted-owl-s0/numbers.jsonl"), mode="full", lr=2e-5))

The student starts from the teacher's base and learns (user prompt -> teacher numbers), or with --loss
distill the teacher's next-token distributions on them. The run directory holds config.json (this run's
config), student.json, curve.json and the student's weights: a PEFT adapter beside them, or the full model
in model/ (a Hugging Face directory; the student directory loads wherever a model directory does).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from interp import InterpError
from interp.loop import validate
from interp.loop.distill import dataset_teacher, make_distiller
from interp.loop.models import load_model, model_fingerprint, model_label, resolve_model_dir
from interp.loop.runs import run_directory
from interp.loop.training import TrainConfig, save_student, train_student
from interp.plan.plan import ANSWER_TOKENS, DTYPE_BYTES, TrainShape, training_stage
from interp.plan.plan_check import Plan, PlanFlags, detect_device, gate
from interp.plan.shapes import read_model_shape

log = logging.getLogger(__name__)


@dataclass
class TrainStudentConfig(TrainConfig, PlanFlags):
    """Fine-tune a student from the teacher's initialisation on (user prompt -> teacher numbers)."""

    dataset: Path | None = None
    """numbers.jsonl written by experiments.generate_numbers (required)."""
    model: str | None = None
    """The student's initialisation = the teacher's base: an embedded organism by name (organism,
    organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default: organism)."""
    system: str = "default"
    """Training system prompt: "default" (the model's own), "none", or any text."""
    dtype: str = "float32"
    """float32, bfloat16 or float16."""
    device: str = "cpu"
    """cpu, cuda, ..."""
    out: Path | None = None
    """Run directory (default: runs/students/<dataset>-<mode><rank>-s<seed>)."""
    overwrite: bool = False
    """Replace an existing run directory."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset is None:
            raise InterpError("--dataset is required")


def student_name(cfg: TrainStudentConfig) -> str:
    kind = f"lora{cfg.rank}" if cfg.mode == "lora" else "full"
    return f"{Path(cfg.dataset).parent.name}-{kind}-s{cfg.seed}"


def student_plan(cfg: TrainStudentConfig, n_examples: int) -> Plan:
    """The student's training as a plan (from the base's config.json; a distilling teacher adds its weights)."""
    base = resolve_model_dir(cfg.model)
    shape, device = read_model_shape(base), detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    t = TrainShape.of(cfg, cfg.mode, cfg.rank, n_examples, targets=cfg.target_modules)
    stage = training_stage(f"student {student_name(cfg)}", shape, t, device.kind)
    if cfg.loss == "distill":
        teacher = shape.params().total * DTYPE_BYTES[cfg.dtype]
        stage = replace(stage, memory=replace(stage.memory, weights=stage.memory.weights + teacher))
    assumed = (
        f"{n_examples} examples x {cfg.epochs} epochs, batch {cfg.batch_size}, prompts of {cfg.plan_prompt_tokens} "
        f"tokens + answers of {ANSWER_TOKENS}, {cfg.dtype} weights, precision {t.resolved_precision}"
        f"{', gradient checkpointing' if cfg.grad_checkpointing else ''}"
    )
    return Plan(f"train_student on {model_label(cfg.model)}", shape, device, (stage,), assumed)


def student_meta(cfg: TrainStudentConfig, base: Path, model, n_examples: int) -> dict:
    """student.json: the base the student starts from (with its fingerprint) and how it was trained."""
    return {
        "base_model": str(base),
        "base_fingerprint": model_fingerprint(model),
        "mode": cfg.mode,
        "rank": cfg.rank if cfg.mode == "lora" else None,
        "system": cfg.system,
        "dataset": str(cfg.dataset),
        "n_examples": n_examples,
        "seed": cfg.seed,
    }


def run(cfg: TrainStudentConfig) -> Path:
    """The trained student in `cfg.out` (config.json, student.json, curve.json and the weights: a LoRA
    adapter beside them, a full-FT model in model/); under --plan, the plan alone."""
    rows = validate.dataset(cfg.dataset)
    rows = rows[: cfg.max_examples] if cfg.max_examples else rows
    base = validate.base_model(cfg.model, config_only=cfg.plan)
    if cfg.loss == "distill":
        validate.base_model(dataset_teacher(cfg.dataset, rows, cfg.model)[0], "the dataset's teacher_model")
    out = cfg.out or Path("runs/students") / student_name(cfg)
    plan = gate(student_plan(cfg, len(rows)), cfg)  # stops here if it does not fit
    if cfg.plan:
        sys.stdout.write(f"{plan}\n")  # as cli_main writes the run directory
        return out
    log.info("%s", plan)
    model, tok = load_model(base, cfg.dtype, cfg.device)
    meta = student_meta(cfg, base, model, len(rows))
    with run_directory(out, cfg, cfg.overwrite) as run_dir:
        distiller = (
            make_distiller(cfg.dataset, rows, tok, cfg.model, cfg.dtype, cfg.device)
            if cfg.loss == "distill"
            else None
        )
        result = train_student(model, tok, rows, cfg.system, cfg, distiller, cfg.progress)
        save_student(result, run_dir, tok, meta)
        log.info("final loss %.4f, %.0f tokens/s", result.final_loss, result.tokens_per_s)
    return out
