"""Sweeps resume after a kill without recomputing finished jobs; --force recomputes."""

import json
from pathlib import Path

import pytest

from interp.study.experiment import ExecutorConfig
from interp.study.jobs import RUNNERS, Job
from interp.study.sweep import job_path, run_jobs

CALLS: list[str] = []


def _square(params: dict, out: Path, root: Path) -> dict:
    CALLS.append(params["x"])
    if params["x"] == (root / "fail_on").read_text().strip():
        raise RuntimeError("killed")
    (out / "payload.txt").write_text(params["x"])
    return {"y": int(params["x"]) ** 2}


RUNNERS["test-square"] = _square


def _jobs() -> list[Job]:
    return [Job("test-square", f"square-{x}", {"x": str(x)}) for x in range(4)]


def test_killed_sweep_resumes_without_recomputing(tmp_path: Path) -> None:
    CALLS.clear()
    (tmp_path / "fail_on").write_text("2")
    with pytest.raises(RuntimeError):
        run_jobs(_jobs(), tmp_path, ExecutorConfig())
    assert CALLS == ["0", "1", "2"]
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [
        "square-0",
        "square-1",
    ]  # no partial dir
    assert json.loads((job_path(tmp_path, _jobs()[1]) / "config.json").read_text())["params"] == {"x": "1"}
    (tmp_path / "jobs" / ".square-2.x1y2.partial").mkdir()  # what a SIGKILL mid-job leaves
    CALLS.clear()
    (tmp_path / "fail_on").write_text("none")
    results = run_jobs(_jobs(), tmp_path, ExecutorConfig())
    assert not list((tmp_path / "jobs").glob(".*"))
    assert CALLS == ["2", "3"]
    assert [r["y"] for r in results] == [0, 1, 4, 9]


def test_force_recomputes(tmp_path: Path) -> None:
    (tmp_path / "fail_on").write_text("none")
    run_jobs(_jobs(), tmp_path, ExecutorConfig())
    CALLS.clear()
    run_jobs(_jobs(), tmp_path, ExecutorConfig(force=True))
    assert CALLS == ["0", "1", "2", "3"]
