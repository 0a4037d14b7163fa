"""Self-describing run directories and atomic writes.

A run directory only appears under its final name once everything in it is written: work happens in
a hidden sibling that is renamed at the end, and removed if anything fails. A killed run therefore
never leaves a half-written directory that a rerun would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from interp import InterpError
from interp.loop.config import save_config


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600: give it the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


JOB_FILE = "job.json"
"""Where the sweep kept a job's own config from 8c9ebd2 until full-FT students moved their model into
model/ (`interp.loop.models.FULL_FT_MODEL`): a full-FT student had saved its model's config.json over the
job's. New jobs write config.json alone; this name is only read, for the jobs of that code."""


def job_config_path(job_dir: Path) -> Path:
    """Where a job directory's own config is: job.json where a job kept it (`JOB_FILE`), else config.json."""
    return job_dir / JOB_FILE if (job_dir / JOB_FILE).exists() else job_dir / "config.json"


def read_json(path: Path, missing: str) -> Any:
    """The JSON in `path`: one error where it is absent (`missing` says what was expected there) or where
    it is not JSON."""
    if not path.exists():
        raise InterpError(missing)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InterpError(f"{path} is not JSON ({e.msg}, line {e.lineno})") from None


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def run_directory(out: Path, cfg: Any, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory that becomes `out` (with `cfg`'s config.json, unless `cfg` is None) only if
    the block succeeds."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise InterpError(f"output directory {out} already exists (choose another --out or pass --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        if cfg is not None:
            save_config(cfg, staging)
        yield staging
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
