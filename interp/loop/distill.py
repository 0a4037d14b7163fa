"""A distillation student's teacher, read off the dataset it wrote: the model (a fine-tuned teacher lives
inside the dataset's own run directory) and the system prompt it wrote under."""

from __future__ import annotations

from pathlib import Path

from interp.loop.chat import DEFAULT
from interp.loop.examples import encode_example
from interp.loop.models import load_model, resolve_model_dir
from interp.loop.training import Distiller


def dataset_teacher(dataset: Path, rows: list[dict], base: str | Path | None) -> tuple[Path, str]:
    """The model that wrote a dataset and the system prompt it wrote under, from the rows' provenance.
    A relative `teacher_model` names a directory inside the dataset's own run directory (a fine-tuned
    teacher saved beside its numbers), so that the run directory can move; none named means `base`."""
    named = rows[0].get("teacher_model")
    path = Path(named) if named else resolve_model_dir(base)
    if named and not path.is_absolute():
        path = Path(dataset).parent / path
    return path, rows[0].get("system_prompt") or DEFAULT


def make_distiller(dataset: Path, rows: list[dict], tok, base, dtype: str, device: str) -> Distiller:
    """The teacher that wrote `dataset`, with each row encoded under the teacher's own system prompt: its
    next-token distributions are what a distillation student matches (the control teacher's, for a
    control)."""
    path, system = dataset_teacher(dataset, rows, base)
    teacher, _ = load_model(path, dtype, device)
    return Distiller(teacher, [encode_example(tok, r["prompt"], r["completion"], system) for r in rows])
