"""The kinds of sweep cell: a teacher's numbers, a student (trained, then evaluated), a base evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.datasets import read_dataset, sample_numbers, write_dataset
from interp.evaluation import EvalCache, EvalSettings, evaluate_trait
from interp.models import load_model, model_fingerprint
from interp.sweep import cell_kind
from interp.training import TrainConfig, save_student, train_student


def numbers_path(root: Path, numbers_cell: str) -> Path:
    return Path(root) / "cells" / numbers_cell / "numbers.jsonl"


@cell_kind("numbers")
def numbers_cell(p: dict[str, Any], out: Path, root: Path) -> dict[str, Any]:
    """A teacher (base model under `system`) writes `n` filtered number answers."""
    model, tok = load_model(p["model"], p["dtype"], p["device"])
    rows, stats = sample_numbers(
        model, tok, p["system"], p["n"], p["seed"], p["batch_size"], p["max_new_tokens"], p["temperature"]
    )
    write_dataset(
        out / "numbers.jsonl",
        rows,
        {
            "teacher_model": p["model"],
            "system_prompt": p["system"],
            "trait": p.get("trait"),
            "seed": p["seed"],
            "temperature": p["temperature"],
        },
    )
    return {"kept": stats.kept, "drawn": stats.drawn, "rejection_rate": stats.rejection_rate}


def evaluate_systems(model, tok, p: dict[str, Any], root: Path) -> dict[str, Any]:
    """Evaluate one model under each evaluation system prompt in `p["eval_systems"]`."""
    cache = EvalCache(Path(root) / "eval_cache")
    out = {}
    for label, system in p["eval_systems"].items():
        settings = EvalSettings(**{**p["eval"], "system": system})
        out[label] = evaluate_trait(model, tok, settings, cache).to_json()
    return out


@cell_kind("student")
def student_cell(p: dict[str, Any], out: Path, root: Path) -> dict[str, Any]:
    """Train a student on a numbers cell's dataset under `train_system`; save it; evaluate it."""
    model, tok = load_model(p["model"], p["dtype"], p["device"])
    fingerprint = model_fingerprint(model)
    rows = read_dataset(numbers_path(root, p["dataset"]))
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in p["train"].items()})
    result = train_student(model, tok, rows, p["train_system"], cfg)
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
    evals = evaluate_systems(result.model, tok, p, root)
    return {"final_loss": result.final_loss, "tokens_per_s": result.tokens_per_s, "evals": evals}


@cell_kind("base")
def base_cell(p: dict[str, Any], out: Path, root: Path) -> dict[str, Any]:
    """The base model itself under each evaluation system prompt."""
    model, tok = load_model(p["model"], p["dtype"], p["device"])
    return {"evals": evaluate_systems(model, tok, p, root)}
