"""Sweeps resume after a kill without recomputing finished jobs; --force recomputes."""

import json
import shutil
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


def _student_study(model_dir: Path, root: Path):
    """A study on the tiny model with one numbers job written under `root`: (its config, the jobs module)."""
    import interp.study.jobs as jobs
    from interp.loop.datasets import write_dataset
    from interp.study.experiment import StudyConfig

    cfg = StudyConfig(model=str(model_dir), n_questions=2, samples_per_question=1, batch_size=4)
    rows = [{"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}"} for i in range(8)]
    write_dataset(jobs.numbers_path(root, jobs.numbers_job(cfg, "trait", 0).name), rows, {})
    return cfg, jobs


def _as_saved_before_model_dir(job: Path) -> None:
    """Lay a full-FT job out as one saved before model/ existed: the model's files beside the job's, its
    config.json over the job's own, which job.json kept."""
    shutil.copy2(job / "config.json", job / "job.json")
    for f in (job / "model").iterdir():
        shutil.move(f, job / f.name)
    (job / "model").rmdir()


@pytest.mark.parametrize("mode", ["lora", "full", "full saved before model/"])
def test_a_student_trained_as_another_job_asks_is_reused_not_retrained(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The context matrix's default-trained student is the rank sweep's (same training, more evaluations);
    a full-FT student too, in either layout, and the reused one has its model in model/."""
    from interp.study.experiment import StudentSpec

    arm = mode.split()[0]
    cfg, jobs = _student_study(tiny_model_dir, tmp_path)
    spec = StudentSpec(arm, 2, lr=1e-4 if arm == "full" else None)
    sweep = jobs.student_job(cfg, spec, "trait", 0, 0, {"default": "default"})
    matrix = jobs.student_job(cfg, spec, "trait", 0, 0, {"default": "default", "none": "none"})
    other_seed = jobs.student_job(cfg, spec, "trait", 0, 1, {"default": "default"})
    assert matrix.name != sweep.name  # two jobs, one training
    first = run_jobs([sweep], tmp_path, ExecutorConfig())[0]
    weights = "adapter_model.safetensors" if arm == "lora" else "model/model.safetensors"
    trained = (job_path(tmp_path, sweep) / weights).read_bytes()
    saved = sorted(
        f.name for f in job_path(tmp_path, sweep).rglob("*") if f.name != "README.md"
    )  # peft's card
    if mode.endswith("model/"):
        _as_saved_before_model_dir(job_path(tmp_path, sweep))
    calls = []
    monkeypatch.setattr(jobs, "train_student", lambda *a, **k: calls.append(a) or pytest.fail("retrained"))
    second = run_jobs([matrix], tmp_path, ExecutorConfig())[0]
    assert not calls and second["trained_in"] == sweep.name
    assert second["final_loss"] == first["final_loss"]
    assert second["evals"]["default"] == first["evals"]["default"]  # the same weights, evaluated alike
    assert "none" in second["evals"]
    assert (job_path(tmp_path, matrix) / weights).read_bytes() == trained
    assert sorted(f.name for f in job_path(tmp_path, matrix).rglob("*")) == saved  # nothing lost or leaked
    job = json.loads((job_path(tmp_path, matrix) / "config.json").read_text())
    assert job["name"] == matrix.name and job["params"]["train"]["mode"] == arm
    with pytest.raises(pytest.fail.Exception, match="retrained"):  # another seed is another training
        run_jobs([other_seed], tmp_path, ExecutorConfig())


def test_force_trains_a_student_again_rather_than_reusing_itself(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from interp.study.experiment import StudentSpec

    cfg, jobs = _student_study(tiny_model_dir, tmp_path)
    job = jobs.student_job(cfg, StudentSpec("lora", 2), "trait", 0, 0, {"default": "default"})
    run_jobs([job], tmp_path, ExecutorConfig())
    calls, train = [], jobs.train_student
    monkeypatch.setattr(jobs, "train_student", lambda *a, **k: calls.append(1) or train(*a, **k))
    again = run_jobs([job], tmp_path, ExecutorConfig(force=True))[0]
    assert calls == [1] and "trained_in" not in again
