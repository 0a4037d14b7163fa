"""Sweeps resume after a kill without recomputing finished cells; --force recomputes."""

import json
from pathlib import Path

import pytest

from interp.sweep import Cell, ExecutorConfig, cell_kind, cell_path, run_cells

CALLS: list[str] = []


@cell_kind("test-square")
def _square(params: dict, out: Path, root: Path) -> dict:
    CALLS.append(params["x"])
    if params["x"] == (root / "fail_on").read_text().strip():
        raise RuntimeError("killed")
    (out / "payload.txt").write_text(params["x"])
    return {"y": int(params["x"]) ** 2}


def _cells() -> list[Cell]:
    return [Cell("test-square", f"square-{x}", {"x": str(x)}) for x in range(4)]


def test_killed_sweep_resumes_without_recomputing(tmp_path: Path) -> None:
    CALLS.clear()
    (tmp_path / "fail_on").write_text("2")
    with pytest.raises(RuntimeError):
        run_cells(_cells(), tmp_path, ExecutorConfig())
    assert CALLS == ["0", "1", "2"]
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [
        "square-0",
        "square-1",
    ]  # no partial dir
    assert json.loads((cell_path(tmp_path, _cells()[1]) / "config.json").read_text())["params"] == {"x": "1"}
    (tmp_path / "cells" / ".square-2.x1y2.partial").mkdir()  # what a SIGKILL mid-cell leaves
    CALLS.clear()
    (tmp_path / "fail_on").write_text("none")
    results = run_cells(_cells(), tmp_path, ExecutorConfig())
    assert not list((tmp_path / "cells").glob(".*"))
    assert CALLS == ["2", "3"]
    assert [r["y"] for r in results] == [0, 1, 4, 9]


def test_force_recomputes(tmp_path: Path) -> None:
    (tmp_path / "fail_on").write_text("none")
    run_cells(_cells(), tmp_path, ExecutorConfig())
    CALLS.clear()
    run_cells(_cells(), tmp_path, ExecutorConfig(force=True))
    assert CALLS == ["0", "1", "2", "3"]
