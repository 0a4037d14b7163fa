"""Sweeps as independent, resumable jobs, run serially or on Ray.

A job is one unit of work (a teacher's number dataset, a student trained and evaluated, ...) with a
unique name under `<root>/jobs/`. Its directory appears only once the job finished (staged, then
renamed), and holds `config.json` and `result.json`; a rerun skips finished jobs, so a killed sweep
resumes where it stopped, and `force=True` recomputes. Every job fixes its seeds and thread count,
so the serial and the Ray executor compute the same numbers.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from interp.loop.runs import atomic_write_json, run_directory
from interp.loop.threads import torch_threads
from interp.study.experiment import ExecutorConfig
from interp.study.jobs import RUNNERS, Job, numbers_job

log = logging.getLogger(__name__)


def job_path(root: Path, job: Job) -> Path:
    return Path(root) / "jobs" / job.name


def finished(root: Path, job: Job) -> dict[str, Any] | None:
    path = job_path(root, job) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_job(job: Job, root: Path, threads: int, force: bool = False) -> dict[str, Any]:
    """Run one job unless it already finished; returns its result."""
    if not force and (done := finished(root, job)) is not None:
        return done
    log.info("job %s", job.name)
    with torch_threads(threads):  # fixed per job, so that both executors compute the same numbers
        with run_directory(job_path(root, job), job, overwrite=True) as staging:
            result = RUNNERS[job.kind](job.params, staging, Path(root))
            atomic_write_json(staging / "result.json", result)
    return result


def clean_partials(root: Path) -> None:
    """Remove staging directories a killed run left behind."""
    for partial in (Path(root) / "jobs").glob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)


def run_jobs(jobs: list[Job], root: Path, ex: ExecutorConfig) -> list[dict[str, Any]]:
    """Run jobs (which must not depend on each other) and return their results in order."""
    clean_partials(root)
    if ex.executor == "serial":  # a bar with counts and an ETA (finished jobs pass in a blink)
        bar = tqdm(jobs, desc="jobs", unit="job", disable=len(jobs) < 2, mininterval=5)
        return [run_job(c, root, ex.threads, ex.force) for c in bar]
    if ex.executor == "ray":
        return _run_on_ray(jobs, root, ex)
    raise ValueError(f"unknown executor {ex.executor!r}")


def _run_on_ray(jobs: list[Job], root: Path, ex: ExecutorConfig) -> list[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        ray.init(
            address=ex.address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(ex.threads)}},
        )
    remote = ray.remote(num_cpus=ex.cpus_per_job, num_gpus=ex.gpus_per_job)(run_job)
    todo = [c if ex.force or finished(root, c) is None else None for c in jobs]
    refs = {
        c.name: remote.remote(c, Path(root).resolve(), ex.threads, ex.force) for c in todo if c is not None
    }
    pending, done = {ref: name for name, ref in refs.items()}, {}
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(refs),
        desc="jobs",
        unit="job",
        disable=len(jobs) < 2,
        mininterval=5,
    )
    with bar:  # the same counts and ETA as the serial bar, advanced as the cluster finishes jobs
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            done[pending.pop(ready[0])] = ray.get(ready[0])
            bar.update()
    return [done[c.name] if c.name in done else finished(root, c) for c in jobs]


def run_numbers_jobs(cfg, root: Path) -> dict[str, dict[str, Any]]:
    """Run (or find finished) the trait teacher's and the control's number datasets of a study config;
    per job its filter pass rate (answers that passed / answers drawn; more pass than are kept) and counts."""
    jobs = [numbers_job(cfg, t, d) for t in ("trait", "control") for d in cfg.data_seeds]
    results = run_jobs(jobs, root, cfg.executor_config)
    free = ("constrained", "unconstrained_pass_rate")  # a constrained teacher's free pass rate beside it
    return {
        j.name: {"pass_rate": 1 - r["rejection_rate"], "kept": r["kept"], "drawn": r["drawn"]}
        | {k: r[k] for k in free if k in r}
        for j, r in zip(jobs, results, strict=True)
    }
