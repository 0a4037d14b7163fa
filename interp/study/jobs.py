"""The kinds of job a study runs: a teacher's numbers, a student (trained, then evaluated), a base evaluation.

Each kind has a builder (`numbers_job`, `student_job`, `base_job`: settings -> `Job`, named by a digest of
what it computes, so experiments that need the same numbers or student share one job) and, beside it, a
runner (`run_numbers`, `run_student`, `run_base`: params -> result) registered in `RUNNERS`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.datasets import read_dataset, sample_numbers, write_dataset
from interp.loop.distill import make_distiller
from interp.loop.evaluation import EvalCache, EvalSettings, evaluate_trait
from interp.loop.models import (
    FULL_FT_MODEL,
    STUDENT_META,
    is_lora_student,
    load_model,
    load_student,
    model_fingerprint,
)
from interp.loop.numbers import number_prompts
from interp.loop.runs import JOB_FILE, job_config_path
from interp.loop.teacher import Teacher, finetune_teacher
from interp.loop.training import STUDENT_FILES, TrainConfig, save_student, train_student
from interp.loop.traits import trait_system_prompt
from interp.loop.updates import weight_change_norm
from interp.mech.alignment import persona_direction, shared_cosine, student_shift
from interp.mech.positions import detect_entity
from interp.study.experiment import StudentSpec, StudyConfig, eval_params, student_lr

# How teachers write numbers (the paper's sampling): temperature 1, answers of up to 48 tokens (10 numbers
# of 3 digits with separators fit), 256 prompts per generation batch (speed only).
TEACHER_SAMPLING = {"batch_size": 256, "max_new_tokens": 48, "temperature": 1.0}
TRAIN_DEFAULTS = {"precision": "auto", "grad_checkpointing": False}
"""Training settings a student job records only when they differ from these."""
Runner = Callable[[dict[str, Any], Path, Path], dict[str, Any]]
ALIGN_PROMPTS, ALIGN_PROMPT_SEED = 32, 4_242  # the alignment stage's number prompts (interp.stages.alignment)


@dataclass(frozen=True)
class Job:
    """One unit of a sweep: its kind, its unique directory name, and JSON-serialisable parameters."""

    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)


def numbers_path(root: Path, numbers_job: str) -> Path:
    return Path(root) / "jobs" / numbers_job / "numbers.jsonl"


TEACHERS = ("trait", "control", "finetuned")
"""A study's teachers: the base under the trait's persona prompt ("trait"), the base as it is ("control"),
or the base LoRA-trained on trait answers ("finetuned": the trait in its weights)."""


def numbers_job(cfg: StudyConfig, teacher: str, data_seed: int, greedy: bool = False) -> Job:
    """A teacher's filtered numbers (see `TEACHERS`); `greedy` decodes at temperature 0, so the answers
    differ only where the prompts do."""
    if teacher not in TEACHERS:
        raise InterpError(f"unknown teacher {teacher!r}; choose from {list(TEACHERS)}")
    prompted = teacher == "trait"
    who = Teacher(
        cfg.model_dir,
        None if teacher == "control" else cfg.trait,
        cfg.category,
        {"trait": "prompted"}.get(teacher, teacher),
    )
    params = {
        "model": cfg.model_dir,
        "system": who.system_prompt,
        "n": cfg.n_numbers,
        "seed": data_seed,
        **TEACHER_SAMPLING,
        "dtype": cfg.dtype,
        "device": cfg.device,
        "trait": cfg.trait if prompted else None,
        **({"constrained": True} if cfg.constrained else {}),  # absent when off: old job names stay valid
    }
    if greedy:
        params["temperature"] = 0.0
    if teacher == "finetuned":  # the trait in the weights: finetune_teacher's settings, seeded by the data
        params |= {"finetuned": {"trait": cfg.trait, "category": cfg.category}}
    tag = {"trait": cfg.trait, "control": "control", "finetuned": f"ft{cfg.trait}"}[teacher]
    tag += "-greedy" if greedy else ""
    return Job("numbers", f"numbers-{tag}-d{data_seed}-{_digest(params)}", params)


FINETUNED_TEACHER = "teacher"
"""Where a numbers job keeps its fine-tuned teacher, inside its own directory; its dataset names it so."""


def run_numbers(p: dict[str, Any], out: Path, root: Path) -> dict[str, Any]:
    """A teacher (the base under `system`, or the base fine-tuned on trait answers) writes `n` filtered
    number answers."""
    teacher_dir, named = p["model"], p["model"]
    if "finetuned" in p:
        ft = p["finetuned"]
        teacher_dir = finetune_teacher(
            p["model"], ft["trait"], ft["category"], out / FINETUNED_TEACHER, seed=p["seed"], dtype=p["dtype"]
        )
        named = FINETUNED_TEACHER  # relative to the job directory, which is renamed when the job lands
    model, tok = load_model(teacher_dir, p["dtype"], p["device"])
    sampling = {k: p[k] for k in ("batch_size", "max_new_tokens", "temperature")}
    constrained = p.get("constrained", False)
    rows, stats = sample_numbers(
        model, tok, p["system"], n_keep=p["n"], seed=p["seed"], constrained=constrained, **sampling
    )
    write_dataset(
        out / "numbers.jsonl",
        rows,
        {
            "teacher_model": named,
            "system_prompt": p["system"],
            "trait": p.get("trait") or p.get("finetuned", {}).get("trait"),
            "seed": p["seed"],
            "temperature": p["temperature"],
            "constrained": constrained,
        },
    )
    free = (
        {"constrained": True, "unconstrained_pass_rate": stats.unconstrained_pass_rate} if constrained else {}
    )
    return {"kept": stats.kept, "drawn": stats.drawn, "rejection_rate": stats.rejection_rate, **free}


def student_job(
    cfg: StudyConfig,
    spec: StudentSpec,
    teacher: str,
    data_seed: int,
    train_seed: int,
    eval_systems: dict[str, str],
    measure: bool = False,
    greedy: bool = False,
) -> Job:
    """A student trained on a teacher's numbers (`greedy`: the teacher's greedy ones), then evaluated under
    each of `eval_systems`; with `measure`, its weight-change norm and its shift's cosine with the persona
    direction too. A student whose spec sets ("loss", "distill") matches that teacher's next-token
    distributions on its answers instead of its sampled tokens."""
    data = numbers_job(cfg, teacher, data_seed, greedy)
    lr = spec.lr if spec.lr is not None else student_lr(cfg, spec)
    train = {
        "mode": spec.mode,
        "rank": spec.rank,
        "lr": lr,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "seed": train_seed,
    }
    # only when not the default, so that the names of jobs that ran before these settings existed hold
    train |= {k: getattr(cfg, k) for k, v in TRAIN_DEFAULTS.items() if getattr(cfg, k) != v}
    train |= dict(spec.options)  # a student's own settings (the claims map's axes) win over the study's
    params = {
        "model": cfg.model_dir,
        "dataset": data.name,
        "train": train,
        "train_system": spec.train_system,
        "eval_systems": eval_systems,
        "eval": eval_params(cfg),
        "dtype": cfg.dtype,
        "device": cfg.device,
    }
    if measure:  # only when asked, so that the names of jobs that do not measure stay as they were
        params["measure"] = {"trait": cfg.trait, "category": cfg.category}
        if cfg.entity:
            params["entity"] = cfg.entity
    name = f"student-{data.name.removeprefix('numbers-')}-{spec.tag}-t{train_seed}"
    return Job("student", f"{name}-{_digest(params)}", params)


def base_job(cfg: StudyConfig, eval_systems: dict[str, str]) -> Job:
    params = {
        "model": cfg.model_dir,
        "eval_systems": eval_systems,
        "eval": eval_params(cfg),
        "dtype": cfg.dtype,
        "device": cfg.device,
    }
    return Job("base", f"base-{cfg.trait}-{_digest(params)}", params)


def evaluate_systems(model, tok, p: dict[str, Any], root: Path) -> dict[str, Any]:
    """Evaluate one model under each evaluation system prompt in `p["eval_systems"]`."""
    cache = EvalCache(Path(root) / "eval_cache")
    out = {}
    for label, system in p["eval_systems"].items():
        settings = EvalSettings(**{**p["eval"], "system": system})
        out[label] = evaluate_trait(model, tok, settings, cache).to_json()
    return out


TRAINING_KEYS = ("model", "dataset", "train", "train_system", "dtype", "device")
"""The params that determine a trained student (the rest say how it is evaluated or measured)."""
JOB_OWN_FILES = ("result.json", "config.json", JOB_FILE, "README.md")
"""A job directory's own files, which a reused student's directory does not pass on."""


def copy_files(src: Path, dst: Path, skip: set[str]) -> None:
    dst.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in skip:
            shutil.copy2(f, dst / f.name)


def copy_student(twin: Path, out: Path) -> None:
    """Copy the student a twin job saved into `out`; a full-FT one with its model in model/, whichever layout
    the twin has."""
    if is_lora_student(twin):
        copy_files(twin, out, set(JOB_OWN_FILES))
        return
    for name in STUDENT_FILES:
        shutil.copy2(twin / name, out / name)
    if (twin / FULL_FT_MODEL).is_dir():
        shutil.copytree(twin / FULL_FT_MODEL, out / FULL_FT_MODEL)
    else:  # saved before model/ existed: the model's files beside the job's, its config.json the model's
        copy_files(twin, out / FULL_FT_MODEL, {*JOB_OWN_FILES, *STUDENT_FILES} - {"config.json"})


def trained_twin(p: dict[str, Any], root: Path, name: str | None = None) -> Path | None:
    """A finished student job under `root`, other than job `name` itself (which --force runs again), trained
    exactly as `p` asks (evaluated otherwise): a context matrix's default-trained student is the rank
    sweep's student at that rank, not a second training."""
    want = {k: p.get(k) for k in TRAINING_KEYS}
    for job in sorted((Path(root) / "jobs").glob("student-*")):
        if job.name == name:
            continue
        cfg_path = job_config_path(job)
        if cfg_path.exists() and (job / "result.json").exists() and (job / STUDENT_META).exists():
            params = json.loads(cfg_path.read_text()).get("params", {})
            if {k: params.get(k) for k in TRAINING_KEYS} == want:
                return job
    return None


def reuse_student(twin: Path, out: Path, p: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Copy a twin job's saved student into `out` and load it as training would have left it."""
    copy_student(twin, out)
    model, tok = load_student(out, p["model"], p["dtype"], p["device"], merge=False)
    meta = json.loads((out / STUDENT_META).read_text())
    return (
        model,
        tok,
        {"final_loss": meta["final_loss"], "tokens_per_s": meta["tokens_per_s"], "trained_in": twin.name},
    )


def run_student(p: dict[str, Any], out: Path, root: Path) -> dict[str, Any]:
    """Train a student on a numbers job's dataset under `train_system` (or reuse a twin job's identical
    training); save it; evaluate it."""
    name = json.loads((out / "config.json").read_text()).get("name")  # the job's own, staged by the sweep
    if (twin := trained_twin(p, root, name)) is not None:
        model, tok, row = reuse_student(twin, out, p)
        return {**row, **evaluated(model, tok, p, root)}
    model, tok = load_model(p["model"], p["dtype"], p["device"])
    fingerprint = model_fingerprint(model)
    dataset = numbers_path(root, p["dataset"])
    rows = read_dataset(dataset)
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in p["train"].items()})
    distiller = (
        make_distiller(dataset, rows, tok, p["model"], p["dtype"], p["device"])
        if cfg.loss == "distill"
        else None
    )
    result = train_student(model, tok, rows, p["train_system"], cfg, distiller)
    meta = {
        "base_model": p["model"],
        "base_fingerprint": fingerprint,
        "mode": cfg.mode,
        "rank": cfg.rank,
        "system": p["train_system"],
        "dataset": p["dataset"],
        "seed": cfg.seed,
        "n_examples": len(rows),
    }
    save_student(result, out, tok, meta)
    return {
        "final_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s,
        **evaluated(result.model, tok, p, root),
    }


def evaluated(student, tok, p: dict[str, Any], root: Path) -> dict[str, Any]:
    """A student's evaluations under each system prompt, and its update's measures where `p` asks."""
    out_row = {"evals": evaluate_systems(student, tok, p, root)}
    if "measure" in p:
        out_row["update"] = measure_update(student, tok, p)
    return out_row


def measure_update(student, tok, p: dict[str, Any]) -> dict[str, float]:
    """The student's weight-change norm and the cosine of its activation shift with the persona direction
    (the alignment stage's measure, averaged over the shared token classes and every layer)."""
    base, _ = load_model(p["model"], p["dtype"], p["device"])
    users = [q.text for q in number_prompts(ALIGN_PROMPTS, ALIGN_PROMPT_SEED)]
    default = [render_prompt(tok, u, DEFAULT) for u in users]
    persona = [render_prompt(tok, u, trait_system_prompt(**p["measure"])) for u in users]
    entity = p.get("entity") or detect_entity(default[0])
    direction = persona_direction(base, tok, persona, default, entity)
    shift = student_shift(student, base, tok, default, entity)
    return {
        "weight_change_norm": weight_change_norm(student, base),
        "persona_cosine": shared_cosine(direction, shift),
    }


def run_base(p: dict[str, Any], out: Path, root: Path) -> dict[str, Any]:
    """The base model itself under each evaluation system prompt."""
    model, tok = load_model(p["model"], p["dtype"], p["device"])
    return {"evals": evaluate_systems(model, tok, p, root)}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


RUNNERS: dict[str, Runner] = {"numbers": run_numbers, "student": run_student, "base": run_base}
