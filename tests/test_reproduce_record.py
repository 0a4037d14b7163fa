"""A quick reproduce grid gives the results.json it gave when it was recorded, digest for digest.

The record (tests/fixtures/reproduce_quick.json) was written by this test before the stages moved from
experiments/ into interp/stages/ (issue 32): moving code must change no number. Timing fields are left out,
and what names the run's place on disk is written as a placeholder: its --out, the tiny model's directory,
and the digests in job names (a job's digest covers the model's path). Floats are compared exactly, so a
record holds only on the machine and torch build that wrote it: elsewhere the test skips and says so.
`INTERP_RECORD=1 pytest -m slow tests/test_reproduce_record.py` writes a new record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from experiments import reproduce
from interp.loop.config import parse_config

pytestmark = pytest.mark.slow
RECORD = Path(__file__).parent / "fixtures" / "reproduce_quick.json"
STAGES = ("rank_sweep", "context_matrix", "localization", "patching", "alignment", "divergence", "beyond")
GRID = ["--quick", "--n-numbers", "24", "--n-questions", "4", "--samples-per-question", "3", "--threads", "1"]
TIMING = ("timing_s", "stage_times")
JOB = re.compile(r"(^|/)(student|numbers|base)-")
DIGEST = re.compile(r"-[0-9a-f]{8}(?=-|/|$)")


def machine() -> dict[str, str]:
    """What exact floats depend on: the torch build, the CPU's kernels and the thread count."""
    return {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
    }


def canonical(value: Any, paths: dict[str, str]) -> Any:
    """`value` with each run-specific path prefix, and each digest in a job's name, as a placeholder."""
    if isinstance(value, dict):
        return {canonical(k, paths): canonical(v, paths) for k, v in value.items()}  # job names are keys too
    if isinstance(value, list):
        return [canonical(v, paths) for v in value]
    if isinstance(value, str):
        for path, name in paths.items():
            value = value.replace(path, name)
        if JOB.search(value):
            value = DIGEST.sub("-<digest>", value)
    return value


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """Where two JSON values first differ, and how (None where they are equal)."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        found = (first_difference(old[k], new[k], f"{where}.{k}") for k in sorted(old))
        return next((f for f in found if f), None)
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = (
            first_difference(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(old, new, strict=True))
        )
        return next((f for f in found if f), None)
    same = json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)  # NaN equals NaN here
    return None if same else f"{where}: {str(old)[:200]} -> {str(new)[:200]}"


def digests(results: dict[str, Any]) -> dict[str, str]:
    """sha256 of each top-level key's canonical JSON (sorted keys), timing fields left out."""
    return {
        k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()
        for k, v in sorted(results.items())
        if k not in TIMING
    }


def test_a_quick_reproduce_grid_matches_its_record(number_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--model", str(number_model_dir), "--out", str(out), *GRID, "--stages", *STAGES]
    root = reproduce.main(parse_config(reproduce.ReproduceConfig, argv))
    raw = json.loads((root / "results.json").read_text())
    paths = {str(out.resolve()): "<out>", str(out): "<out>", str(Path(number_model_dir).resolve()): "<model>"}
    results = canonical({k: v for k, v in raw.items() if k not in TIMING}, paths)
    if os.environ.get("INTERP_RECORD"):
        record = {"machine": machine(), "digests": digests(results), "results": results}
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {RECORD}")
    record = json.loads(RECORD.read_text())
    if record["machine"] != machine():
        pytest.skip(f"recorded on {record['machine']}, this is {machine()}: exact floats need the same")
    old, now = record["digests"], digests(results)
    changed = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
    assert changed == [], f"changed: {changed}; first at {first_difference(record['results'], results)}"
