"""Settings shared by the paper's experiments, and the body of each experiment's main().

Every experiment config inherits `StudyConfig`; `reproduce` holds one and hands the shared fields to each
experiment. The jobs an experiment runs are built from it in `interp.study.jobs`.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import DEFAULT
from interp.loop.config import save_config
from interp.loop.models import model_label, organism_metadata, resolve_model_dir
from interp.loop.runs import atomic_write_json
from interp.loop.training import RANK_LR_RULES, rank_lr
from interp.organism import TARGET_TRAIT
from interp.plan.plan import (
    ANSWER_TOKENS,
    PASS_RATE,
    QUESTION_TOKENS,
    SampleShape,
    TrainShape,
    sampling_stage,
    training_stage,
)
from interp.plan.plan_check import Plan, PlanFlags, detect_device, gate
from interp.plan.shapes import read_model_shape
from interp.study.plots import save_figure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where jobs run."""

    executor: str = "serial"
    address: str | None = None
    threads: int = 1
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    force: bool = False


@dataclass
class StudyConfig(PlanFlags):
    """Shared settings of the paper's experiments."""

    model: str | None = None
    """Model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default: organism)."""
    trait: str = TARGET_TRAIT
    """Trait word the teacher loves."""
    entity: str | None = None
    """The entity's name in the default system prompt, where no rule reads it (the rules read "You are Qwen,
    created by ..." and "... named SmolLM, trained by ..."); reports say when a model has none."""
    category: str = "animal"
    """Category of the trait."""
    out: Path | None = None
    """Output directory (finished jobs inside it are reused on a rerun)."""
    n_numbers: int = 1000
    """Filtered teacher answers per dataset (the paper: 10,000; the default fits a 2-core CPU)."""
    data_seeds: tuple[int, ...] = (0,)
    """Seeds of the teacher's number datasets."""
    train_seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds of each student."""
    constrained: bool = False
    """Teachers (trait and control alike) sample under the filter's grammar - digits, the prompt's separator,
    end of turn - so every answer passes: a departure from the paper's protocol (it filters free answers),
    for small models whose free answers rarely pass. One free batch's pass rate is recorded beside it."""
    epochs: int = 1
    """Training epochs (the paper: 3; on the organism P(trait) plateaus within ~1,000 examples)."""
    lora_lr: float = 3e-3
    """LoRA learning rate at ranks up to 16 (the paper: 2e-4 on a 7B model, which leaves the organism
    where it started; 3e-3 moves it)."""
    rank_lr_rule: str = "sqrt"
    """How the LoRA lr changes with rank: "sqrt" (ranks r > 16 get lr * sqrt(16 / r)) or "constant" (the
    paper's one lr with alpha = r)."""
    full_lr: float = 3e-4
    """Full fine-tuning learning rate of students that do not name one (the paper: 2e-5)."""
    batch_size: int = 16
    """Training batch size."""
    n_questions: int = 50
    """Evaluation questions (of the 50 paraphrases)."""
    samples_per_question: int = 20
    """Sampled answers per question for the mention rate (the paper: 100)."""
    dtype: str = "float32"
    """float32, bfloat16 or float16."""
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16-pure"] = "auto"
    """Students' training precision: auto (bf16-mixed on a bfloat16 model, else fp32), fp32, bf16-mixed (fp32
    master weights and optimizer states, bf16 autocast) or bf16-pure (the comparison arm)."""
    grad_checkpointing: bool = False
    """Recompute the students' activations in the backward pass (less memory; a third more compute for full
    fine-tuning, half again for LoRA)."""
    device: str = "cpu"
    """cpu or cuda."""
    executor: str = "serial"
    """serial or ray."""
    address: str | None = None
    """Ray cluster address (None: a local Ray instance)."""
    threads: int = 2
    """Torch threads per cell (fixed, so both executors compute the same numbers)."""
    gpus_per_cell: float = 0.0
    """GPUs requested by each Ray task."""
    force: bool = False
    """Recompute finished cells."""

    def __post_init__(self) -> None:
        if self.executor not in ("serial", "ray"):
            raise InterpError(f"--executor must be serial or ray, got {self.executor!r}")
        if self.n_numbers <= 0 or not self.data_seeds or not self.train_seeds:
            raise InterpError("need a positive --n-numbers and at least one data seed and one training seed")
        if self.rank_lr_rule not in RANK_LR_RULES:
            raise InterpError(
                f"--rank-lr-rule must be one of {list(RANK_LR_RULES)}, got {self.rank_lr_rule!r}"
            )

    @property
    def executor_config(self) -> ExecutorConfig:
        return ExecutorConfig(
            self.executor, self.address, self.threads, float(self.threads), self.gpus_per_cell, self.force
        )

    @property
    def model_dir(self) -> str:
        return str(resolve_model_dir(self.model).resolve())


def shared_fields(cfg: StudyConfig) -> dict[str, Any]:
    """The `StudyConfig` part of any experiment config, to build another experiment's config from."""
    return {f.name: getattr(cfg, f.name) for f in fields(StudyConfig)}


def eval_params(cfg: StudyConfig) -> dict[str, Any]:
    return {
        "trait": cfg.trait,
        "category": cfg.category,
        "n_questions": cfg.n_questions,
        "samples_per_question": cfg.samples_per_question,
        "seed": 0,
    }


@dataclass(frozen=True)
class StudentSpec:
    """Which student to train: mode, rank or learning rate, training system prompt."""

    mode: str = "lora"
    rank: int = 8
    lr: float | None = None
    train_system: str = DEFAULT
    system_label: str = "default"
    options: tuple[tuple[str, Any], ...] = ()
    """Further `TrainConfig` fields as (name, value) pairs, e.g. (("optimizer", "sgd"), ("momentum", 0.0))."""

    @property
    def tag(self) -> str:
        core = f"r{self.rank}" if self.mode == "lora" else f"full-lr{self.lr:g}"
        if self.mode == "lora" and self.lr is not None:
            core += f"-lr{self.lr:g}"
        extra = "".join(f"-{k}{_short(v)}" for k, v in self.options)
        return f"{core}{extra}-{self.system_label}"


def _short(value: Any) -> str:
    return (
        "-".join(map(str, value))
        if isinstance(value, tuple | list)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def student_lr(cfg: StudyConfig, spec: StudentSpec) -> float:
    """The learning rate of a student that does not name one: the rank rule for LoRA, else `full_lr`."""
    return rank_lr(cfg.lora_lr, spec.rank, cfg.rank_lr_rule) if spec.mode == "lora" else cfg.full_lr


def spec_dict(spec: StudentSpec) -> dict[str, Any]:
    return asdict(spec)


def check_inputs(cfg: StudyConfig) -> None:
    """What every study is given, checked before any work: the model, and a trait that means something to
    it; `--out`, where given, a directory (finished jobs in it are reused) or a new path. Under --plan only
    the model's config.json is needed (no weights, no tokenizer: the trait's tokens are not checked)."""
    validate.base_model(cfg.model, config_only=cfg.plan)
    if not cfg.plan or organism_metadata(cfg.model) is not None:
        validate.trait(cfg.trait, cfg.model, cfg.category)
    if cfg.out is not None and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise InterpError(f"--out {cfg.out} is a file, not a directory")


def study_root(cfg: StudyConfig, name: str) -> Path:
    return Path(cfg.out or f"runs/{name}")


TEACHER_ROWS, EVAL_ROWS, EVAL_TOKENS = 256, 2000, 12
"""Rows per generation batch of a teacher (jobs.TEACHER_SAMPLING) and of an evaluation (EvalSettings), and
the evaluation's answer length."""


def pass_rate(cfg: StudyConfig) -> float:
    return 1.0 if cfg.constrained else PASS_RATE


def train_shape(cfg: StudyConfig, mode: str, rank: int) -> TrainShape:
    """What one of the study's students looks like to the plan."""
    return TrainShape.of(cfg, mode, rank, cfg.n_numbers)


def numbers_shape(cfg: StudyConfig) -> SampleShape:
    """A teacher writing the study's numbers (filtered: a tenth more are sampled than kept; a constrained
    teacher's answers all pass, after one free batch that measures the pass rate it departs from)."""
    answers = math.ceil(cfg.n_numbers / pass_rate(cfg)) + (TEACHER_ROWS if cfg.constrained else 0)
    return SampleShape(cfg.dtype, TEACHER_ROWS, TEACHER_ROWS, cfg.plan_prompt_tokens, ANSWER_TOKENS, answers)


def evaluation_shape(cfg: StudyConfig) -> SampleShape:
    """One trait evaluation: every question's samples. None sampled: the readouts alone, two passes over
    each question (the first-token probability, and the word's over its spellings)."""
    if cfg.samples_per_question == 0:
        n = cfg.n_questions
        return SampleShape(cfg.dtype, n, n, QUESTION_TOKENS, 1, 2 * n)
    answers = cfg.n_questions * cfg.samples_per_question
    rows = min(EVAL_ROWS, answers)
    return SampleShape(
        cfg.dtype, rows, max(1, rows // cfg.samples_per_question), QUESTION_TOKENS, EVAL_TOKENS, answers
    )


def assumptions(cfg: StudyConfig) -> str:
    t = train_shape(cfg, "full", 1)
    return (
        f"{cfg.n_numbers} numbers ({numbers_shape(cfg).answers} sampled, pass rate {pass_rate(cfg)}"
        f"{', constrained teacher' if cfg.constrained else ''}) x {cfg.epochs} "
        f"epochs, batch {cfg.batch_size}, number prompts of {cfg.plan_prompt_tokens} tokens + answers of "
        f"{ANSWER_TOKENS}, questions of {QUESTION_TOKENS}; {cfg.dtype} weights, precision {t.resolved_precision}"
        f"{', gradient checkpointing' if cfg.grad_checkpointing else ''}"
    )


def study_plan(cfg: StudyConfig, name: str) -> Plan:
    """One run of each kind an experiment starts: a teacher writing numbers, a student at each LoRA rank it
    names (`ranks`, `rank`) and at full fine-tuning (`full_lrs`), an evaluation (`experiments.reproduce
    --plan` also counts the runs of each)."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    ranks = sorted(set(getattr(cfg, "ranks", ())) | ({cfg.rank} if hasattr(cfg, "rank") else set()))
    stages = [sampling_stage("teacher numbers", shape, numbers_shape(cfg), device.kind)]
    stages += [
        training_stage(f"student LoRA r{r}", shape, train_shape(cfg, "lora", r), device.kind) for r in ranks
    ]
    if getattr(cfg, "full_lrs", ()):
        stages.append(training_stage("student full FT", shape, train_shape(cfg, "full", 1), device.kind))
    stages.append(sampling_stage("evaluation", shape, evaluation_shape(cfg), device.kind))
    return Plan(
        f"{name} on {model_label(cfg.model)} (one run of each)",
        shape,
        device,
        tuple(stages),
        assumptions(cfg),
    )


def run_study(
    cfg: StudyConfig, name: str, run, figure, figure_name: str | None = None, plan: Plan | None = None
) -> Path:
    """The body of each experiment's main(): a resumable output directory with config.json, results.json
    and the experiment's figure. `run(cfg, root)` returns the summary; `figure(summary, trait)` draws it.
    A directory this call created is removed again if `run` refuses its input before writing anything.
    Its plan (`plan`, or one run of each kind) comes first: under --plan it is printed and nothing runs;
    a stage that does not fit stops it."""
    root = study_root(cfg, name)
    plan = gate(plan or study_plan(cfg, name), cfg)
    if cfg.plan:
        sys.stdout.write(plan + "\n")  # as cli_main writes the run directory
        return root
    log.info("%s", plan)
    fresh, before = not root.exists(), set(root.iterdir()) if root.is_dir() else set()
    root.mkdir(parents=True, exist_ok=True)  # not staged: finished jobs inside it are reused on a rerun
    save_config(cfg, root)
    try:
        summary = run(cfg, root)
    except InterpError:  # refused its input before writing anything: leave --out as it was
        if set(root.iterdir()) - before == {root / "config.json"}:
            shutil.rmtree(root) if fresh else (root / "config.json").unlink()
        raise
    atomic_write_json(root / "results.json", summary)
    save_figure(figure(summary, cfg.trait), root / "figures" / (figure_name or name))
    return root
