"""Claim 4 over seeds (`interp.stages.where_shift`): finished patching and restricted-LoRA runs joined by
student, the sets every student agrees on, and bad inputs refused with one error that names the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp import InterpError
from interp.mech.sets import SHIFT_SETS
from interp.stages.where_shift import WhereConfig, run
from interp.study.where import carriers, seed_agreement, where_table


def cell(x: float, half: float = 0.05) -> dict:
    return {"recovered_fraction": x, "ci": [x - half, x + half]}


def patching_run(
    root: Path, name: str, student: str, denoise: dict, control: str | None = None, label: str | None = None
) -> Path:
    """A patch_activations run directory as the stage writes it: config.json and scores.json."""
    label = label or name
    run_dir = root / name
    run_dir.mkdir()
    config = {"student": student, "control": control, "trait": "cat", "student_label": label}
    sets = {
        "metric": "P(cat)",
        "denoise": {s: cell(denoise.get(s, 0.0)) for s in SHIFT_SETS},
        "noise": {s: cell(1 - denoise.get(s, 0.0)) for s in SHIFT_SETS},
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "scores.json").write_text(json.dumps({"student": label, "sets": sets, "n_prompts": 8}))
    return run_dir


def localization_run(root: Path, name: str, student: str, only: dict, control: str | None = None) -> Path:
    """A restrict_adapter run directory: config.json and results.json with the position-set rows."""
    run_dir = root / name
    run_dir.mkdir()
    rows = [
        {
            "mode": m,
            "set": s,
            "positions": s,
            **cell(only.get(s, 0.0) if m == "only" else 1 - only.get(s, 0.0)),
        }
        for s in SHIFT_SETS
        for m in ("only", "except")
    ]
    (run_dir / "config.json").write_text(json.dumps({"student": student, "control": control, "trait": "cat"}))
    (run_dir / "results.json").write_text(
        json.dumps({"student": student, "control": control, "localization": rows})
    )
    return run_dir


def test_needed_columns_read_the_upper_bound() -> None:
    rows = where_table(None, {"noise": {"readout": cell(0.3), "user": cell(0.48, 0.1), "entity": cell(0.9)}})
    assert carriers(rows, "noise") == ["readout"]  # user's CI reaches past 0.5: not called needed
    rows = where_table(None, {"denoise": {"readout": cell(0.7), "user": cell(0.52, 0.1)}})
    assert carriers(rows, "denoise") == ["readout"]


def test_agreement_is_what_every_student_calls() -> None:
    a = where_table(None, {"denoise": {"readout": cell(0.9), "user": cell(0.8)}})
    b = where_table(None, {"denoise": {"readout": cell(0.9), "user": cell(0.2)}})
    (denoise,) = seed_agreement({"seed 0": a, "seed 1": b})
    assert denoise["by_student"] == {"seed 0": ["readout", "user"], "seed 1": ["readout"]}
    assert denoise["every_student"] == ["readout"]


def test_runs_join_by_student(tmp_path: Path) -> None:
    p0 = patching_run(tmp_path, "p0", "students/s0", {"readout": 1.0, "user": 0.7})
    p1 = patching_run(tmp_path, "p1", "students/s1", {"readout": 1.0})
    l1 = localization_run(tmp_path, "l1", "students/s1", {"readout": 0.8})
    out = run(WhereConfig(patching=[p0, p1], localization=[l1], out=tmp_path / "where", png=False))
    res = json.loads((out / "results.json").read_text())
    assert list(res["where"]) == ["p0", "p1"]  # the localization run joined p1, not a panel of its own
    readout = {name: next(r for r in rows if r["set"] == "readout") for name, rows in res["where"].items()}
    assert readout["p0"]["only"] is None and readout["p1"]["only"]["recovered_fraction"] == pytest.approx(0.8)
    by = {a["method"]: a for a in res["agreement"]}
    assert by["denoise"]["every_student"] == ["readout"] and by["only"]["by_student"] == {"p1": ["readout"]}
    assert res["reference"] == "base" and "## What every student agrees on" in (out / "report.md").read_text()


def test_mixed_references_are_refused(tmp_path: Path) -> None:
    p0 = patching_run(tmp_path, "p0", "students/s0", {}, control="students/c0")
    l0 = localization_run(tmp_path, "l0", "students/s0", {})  # against the base: another scale
    with pytest.raises(InterpError, match="--localization"):
        run(WhereConfig(patching=[p0], localization=[l0], out=tmp_path / "where"))
    p1 = patching_run(tmp_path, "p1", "students/s1", {})
    with pytest.raises(InterpError, match="references"):
        run(WhereConfig(patching=[p0, p1], out=tmp_path / "where"))
    assert not (tmp_path / "where").exists()


def test_a_missing_run_names_its_flag(tmp_path: Path) -> None:
    with pytest.raises(InterpError, match="--patching .*not a finished run directory"):
        run(WhereConfig(patching=[tmp_path / "nowhere"], out=tmp_path / "where"))
    with pytest.raises(InterpError, match="--out"):
        WhereConfig(patching=[tmp_path])


def test_two_students_under_one_label_are_refused(tmp_path: Path) -> None:
    p0 = patching_run(tmp_path, "p0", "students/s0", {}, label="LoRA r16")
    p1 = patching_run(tmp_path, "p1", "students/s1", {}, label="LoRA r16")
    with pytest.raises(InterpError, match="share the label"):
        run(WhereConfig(patching=[p0, p1], out=tmp_path / "where"))
    assert not (tmp_path / "where").exists()
