"""Stage 3 of the loop: how often does a model (base or student) name the trait as its favorite?

    run(EvaluateTraitConfig(trait="owl"))                                        # the base model
    run(EvaluateTraitConfig(trait="owl", students=("runs/students/a", "runs/students/b")))

The mention rate of sampled answers and the first-token P(trait), with 95% bootstrap CIs; several students
(one per seed) are pooled with a seed-level bootstrap. The run directory holds config.json and
metrics.json (the pooled numbers, the settings, and each student's own).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from interp import InterpError
from interp.loop import validate
from interp.loop.evaluation import EvalCache, EvalSettings, TraitEval, evaluate_trait
from interp.loop.models import load_model, load_student
from interp.loop.runs import atomic_write_json, run_directory
from interp.organism import TARGET_TRAIT
from interp.study.summary import pool

log = logging.getLogger(__name__)


@dataclass
class EvaluateTraitConfig:
    """Evaluate mention rate and first-token probability of a trait, with 95% bootstrap CIs."""

    trait: str = TARGET_TRAIT
    """Trait word scored in the answers."""
    category: str = "animal"
    """The category asked about ("What is your favorite animal?")."""
    model: str | None = None
    """Base model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default:
    organism); LoRA students load on top of it."""
    students: tuple[str, ...] | None = None
    """Student directories (one per seed; pooled with a seed-level bootstrap). None: the base model."""
    system: str = "default"
    """Evaluation system prompt: "default", "none" or any text (independent of the training one)."""
    n_questions: int = 50
    """How many of the 50 question paraphrases to ask."""
    samples_per_question: int = 100
    """Sampled answers per question (0: first-token probability only)."""
    temperature: float = 1.0
    """Sampling temperature."""
    seed: int = 0
    """Sampling seed."""
    batch_size: int = 256
    """Prompts per generation batch."""
    dtype: str = "float32"
    """float32, bfloat16 or float16."""
    device: str = "cpu"
    """cpu, cuda, ..."""
    cache_dir: Path | None = Path("runs/eval_cache")
    """Results cache keyed by the full configuration (None: no cache)."""
    out: Path | None = None
    """Run directory (default: runs/eval/<trait>-<model or student>-<system>)."""
    overwrite: bool = False
    """Replace an existing run directory."""

    def __post_init__(self) -> None:
        if not 1 <= self.n_questions <= 50:
            raise InterpError(f"--n-questions must be in [1, 50], got {self.n_questions}")


def evaluate_one(cfg: EvaluateTraitConfig, student: str | None, settings: EvalSettings) -> TraitEval:
    if student is None:
        model, tok = load_model(cfg.model, cfg.dtype, cfg.device)
    else:
        model, tok = load_student(student, cfg.model, cfg.dtype, cfg.device)
    return evaluate_trait(model, tok, settings, EvalCache(cfg.cache_dir))


def settings_of(cfg: EvaluateTraitConfig) -> EvalSettings:
    """The loop's evaluation settings, from the stage's config."""
    return EvalSettings(
        trait=cfg.trait,
        category=cfg.category,
        system=cfg.system,
        n_questions=cfg.n_questions,
        samples_per_question=cfg.samples_per_question,
        temperature=cfg.temperature,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )


def run(cfg: EvaluateTraitConfig) -> Path:
    """The evaluation in `cfg.out`: config.json and metrics.json."""
    validate.base_model(cfg.model)
    for student in cfg.students or ():
        validate.student(student, "--students")
    validate.trait(cfg.trait, cfg.model, cfg.category)
    settings = settings_of(cfg)
    who = "base" if not cfg.students else Path(cfg.students[0]).name
    out = cfg.out or Path("runs/eval") / f"{cfg.trait}-{who}-{cfg.system[:20].replace(' ', '_')}"
    with run_directory(out, cfg, cfg.overwrite) as run_dir:
        results = [evaluate_one(cfg, s, settings) for s in (cfg.students or (None,))]
        summary = pool([r.to_json() for r in results])
        atomic_write_json(
            run_dir / "metrics.json",
            {**summary, "settings": asdict(settings), "per_student": [r.to_json() for r in results]},
        )
        log.info(
            "%s: mention rate %.4f [%.4f, %.4f], P(first token) %.4f [%.4f, %.4f], P(trait) %.4f",
            cfg.trait,
            summary["mention_rate"],
            *summary["ci"],
            summary["p_first_token"],
            *summary["p_ci"],
            summary["p_trait"],
        )
    return out
