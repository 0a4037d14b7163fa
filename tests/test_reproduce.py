"""The main job end to end on a tiny model: report files, kill-and-resume, and Ray == serial."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import reproduce
from interp.loop.config import parse_config

pytestmark = pytest.mark.slow
TINY = ["--quick", "--n-numbers", "24", "--n-questions", "4", "--samples-per-question", "3"]


def _run(model: Path, out: Path, *extra: str) -> Path:
    argv = ["--model", str(model), "--out", str(out), *TINY, *extra]
    return reproduce.main(parse_config(reproduce.ReproduceConfig, argv))


def _numbers(results: dict) -> dict:
    keys = ("rank_sweep", "full_ft", "control", "context_matrix", "best_rank")
    return {k: results[k] for k in keys}


def test_reproduce_writes_report_and_ray_matches_serial(number_model_dir: Path, tmp_path: Path) -> None:
    serial = _run(
        number_model_dir,
        tmp_path / "serial",
        "--stages",
        "rank_sweep",
        "context_matrix",
        "localization",
        "patching",
        "alignment",
        "divergence",
        "beyond",
    )
    for name in ("report.md", "report.html", "results.json", "config.json"):
        assert (serial / name).exists()
    results = json.loads((serial / "results.json").read_text())
    assert {r["rank"] for r in results["rank_sweep"]} == {1, 4}
    assert set(results["timing_s"]) >= {
        "rank_sweep",
        "context_matrix",
        "localization",
        "alignment",
        "beyond",
        "total",
    }
    rate = results["timing_s"]["matmul_gflops"]  # the yardstick beside the times: a real, positive rate
    assert isinstance(rate, float) and rate > 0
    report = (serial / "report.md").read_text()
    assert f"ran at {rate:.0f} GFLOP/s" in report
    assert (
        "Claim 1" in report
        and "Where the shift lives" in report
        and "positions that carry the shift" in report
    )
    where = results["patching"]["where"]
    assert len(where) == 2 and all(
        len(rows) == 7 for rows in where.values()
    )  # LoRA and full FT, 6 sets + all
    assert (serial / "figures" / "where_the_shift_lives.html").exists()
    assert set(results["claims"]) >= {
        "lora_transfer",
        "no_transfer_under_full_ft",
        "needs_shared_system_prompt",
    }
    assert {c["verdict"] for c in results["claims"].values()} <= {"held", "did not hold", "not resolved"}
    row = results["alignment"][0]
    assert set(row) >= {"student", "rank", "layer", "token_class", "cosine", "projection"}
    assert {r["rank"] for r in results["alignment"]} == {1, 4, "full"}
    assert set(results["divergence"]) >= {"k", "masked_lift", "random_lift", "unmasked_lift"}
    ray_run = _run(
        number_model_dir, tmp_path / "ray", "--executor", "ray", "--stages", "rank_sweep", "context_matrix"
    )
    ray_results = json.loads((ray_run / "results.json").read_text())
    assert _numbers(ray_results) == _numbers(results)


def test_killed_reproduce_resumes_without_recomputing(number_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "experiments.reproduce",
        "--model",
        str(number_model_dir),
        "--out",
        str(out),
        *TINY,
        "--stages",
        "rank_sweep",
    ]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[1], start_new_session=True)
    cells = out / "jobs"
    deadline = time.time() + 300
    while time.time() < deadline and len([p for p in cells.glob("student-*")]) < 2:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {
        p.name: (p / "result.json").stat().st_mtime_ns for p in cells.iterdir() if not p.name.startswith(".")
    }
    assert len([n for n in done if n.startswith("student-")]) >= 2
    assert not (out / "results.json").exists()
    _run(number_model_dir, out, "--stages", "rank_sweep")
    for name, mtime in done.items():
        assert (
            cells / name / "result.json"
        ).stat().st_mtime_ns == mtime  # finished cells were not recomputed
    assert not list(cells.glob(".*.partial"))
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["rank_sweep"] and not resumed["stage_times"]["rank_sweep"]["cached"]
    again = json.loads((_run(number_model_dir, out, "--stages", "rank_sweep") / "results.json").read_text())
    sweep = again["stage_times"]["rank_sweep"]  # a rerun finds it done: it reports the resumed run's time
    assert sweep["cached"] and sweep["computed_s"] == resumed["stage_times"]["rank_sweep"]["seconds"]
    assert "(cached;" in (out / "report.md").read_text()


def test_reproduce_puts_the_claims_map_into_its_report(number_model_dir: Path, tmp_path: Path) -> None:
    out = _run(number_model_dir, tmp_path / "map", "--ranks", "4", "--stages", "rank_sweep", "claims_map")
    results = json.loads((out / "results.json").read_text())
    cmap = results["claims_map"]
    assert cmap["arms"] == ["r4", "full"] and cmap["row_order"][:2] == ["AdamW, best lr", "AdamW, fixed lr"]
    assert all(c["seeds"] == 1 for cells in cmap["rows"].values() for c in cells)  # quick: one fresh seed
    assert "## The claims map" in (out / "report.md").read_text()
    assert "The claims map" in (out / "report.html").read_text()
    assert (out / "figures" / "claims_map.html").exists()
