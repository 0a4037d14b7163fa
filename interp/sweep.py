"""Sweeps as independent, resumable cells, run serially or on Ray.

A cell is one unit of work (a teacher's number dataset, a student trained and evaluated, ...) with a
unique name under `<root>/cells/`. Its directory appears only once the cell finished (staged, then
renamed), and holds `config.json` and `result.json`; a rerun skips finished cells, so a killed sweep
resumes where it stopped, and `force=True` recomputes. Every cell fixes its seeds and thread count,
so the serial and the Ray executor compute the same numbers.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.runs import atomic_write_json, run_directory

log = logging.getLogger(__name__)
CellFn = Callable[[dict[str, Any], Path, Path], dict[str, Any]]
CELL_KINDS: dict[str, CellFn] = {}


def cell_kind(name: str) -> Callable[[CellFn], CellFn]:
    """Register a function `(params, cell_dir, root) -> result` as a kind of cell."""

    def register(fn: CellFn) -> CellFn:
        CELL_KINDS[name] = fn
        return fn

    return register


@dataclass(frozen=True)
class Cell:
    """One unit of a sweep: its kind, its unique directory name, and JSON-serialisable parameters."""

    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where cells run."""

    executor: str = "serial"
    address: str | None = None
    threads: int = 1
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    force: bool = False


def cell_path(root: Path, cell: Cell) -> Path:
    return Path(root) / "cells" / cell.name


def finished(root: Path, cell: Cell) -> dict[str, Any] | None:
    path = cell_path(root, cell) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_cell(cell: Cell, root: Path, threads: int, force: bool = False) -> dict[str, Any]:
    """Run one cell unless it already finished; returns its result."""
    import interp.cells  # noqa: F401  (registers the cell kinds, also inside Ray workers)

    if not force and (done := finished(root, cell)) is not None:
        return done
    torch.set_num_threads(threads)
    log.info("cell %s", cell.name)
    with run_directory(cell_path(root, cell), cell, overwrite=True) as staging:
        result = CELL_KINDS[cell.kind](cell.params, staging, Path(root))
        atomic_write_json(staging / "result.json", result)
    return result


def clean_partials(root: Path) -> None:
    """Remove staging directories a killed run left behind."""
    for partial in (Path(root) / "cells").glob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)


def run_cells(cells: list[Cell], root: Path, ex: ExecutorConfig) -> list[dict[str, Any]]:
    """Run cells (which must not depend on each other) and return their results in order."""
    clean_partials(root)
    if ex.executor == "serial":
        return [run_cell(c, root, ex.threads, ex.force) for c in cells]
    if ex.executor == "ray":
        return _run_on_ray(cells, root, ex)
    raise ValueError(f"unknown executor {ex.executor!r}")


def _run_on_ray(cells: list[Cell], root: Path, ex: ExecutorConfig) -> list[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        ray.init(
            address=ex.address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(ex.threads)}},
        )
    remote = ray.remote(num_cpus=ex.cpus_per_cell, num_gpus=ex.gpus_per_cell)(run_cell)
    todo = [c if ex.force or finished(root, c) is None else None for c in cells]
    refs = {
        c.name: remote.remote(c, Path(root).resolve(), ex.threads, ex.force) for c in todo if c is not None
    }
    done = {name: r for name, r in zip(refs, ray.get(list(refs.values())), strict=True)}
    return [done[c.name] if c.name in done else finished(root, c) for c in cells]
