"""The rank sweep's grid: which students train at which seeds and learning rates."""

from __future__ import annotations

import math

import pytest

from interp import InterpError
from interp.loop.training import rank_lr
from interp.stages.rank_sweep import RankSweepConfig, specs, student_cells
from interp.study.experiment import StudentSpec
from interp.study.sweep import job_path


def _cfg(tiny_model_dir, **kw) -> RankSweepConfig:
    return RankSweepConfig(model=str(tiny_model_dir), train_seeds=(0, 1, 2), **kw)


def test_rank_lr_rules():
    assert rank_lr(3e-3, 64, "constant") == 3e-3
    assert rank_lr(3e-3, 16, "sqrt") == 3e-3 and rank_lr(3e-3, 1, "sqrt") == 3e-3
    assert math.isclose(rank_lr(3e-3, 64, "sqrt"), 1.5e-3)
    with pytest.raises(InterpError):
        rank_lr(3e-3, 64, "rslora?")


def test_only_seeded_ranks_control_and_full_ft_train_at_every_seed(tiny_model_dir):
    cfg = _cfg(tiny_model_dir, ranks=(1, 16, 64), seeded_ranks=(16,), full_lrs=(3e-4,), control_ranks=(16,))
    seeds = {
        (s.tag, t): [c.params["train"]["seed"] for c in student_cells(cfg, s, t)]
        for s, t in (
            (StudentSpec("lora", 1), "trait"),
            (StudentSpec("lora", 16), "trait"),
            (StudentSpec("lora", 16), "control"),
            (StudentSpec("full", 1, 3e-4), "trait"),
        )
    }
    assert seeds == {
        ("r1-default", "trait"): [0],
        ("r16-default", "trait"): [0, 1, 2],
        ("r16-default", "control"): [0, 1, 2],
        ("full-lr0.0003-default", "trait"): [0, 1, 2],
    }
    r64 = student_cells(cfg, StudentSpec("lora", 64), "trait")[0]
    assert math.isclose(r64.params["train"]["lr"], cfg.lora_lr * 0.5)  # the sqrt rule above rank 16


def test_full_ft_controls_can_be_left_to_the_lora_control(tiny_model_dir):
    with_full = specs(_cfg(tiny_model_dir, full_lrs=(3e-4,), control_ranks=(16,)))[1]
    without = specs(_cfg(tiny_model_dir, full_lrs=(3e-4,), control_ranks=(16,), full_controls=False))[1]
    assert [s.mode for s in with_full] == ["lora", "full"] and [s.mode for s in without] == ["lora"]


def test_context_matrix_trains_under_the_chosen_systems_only():
    from interp.stages.context_matrix import ContextMatrixConfig, systems, train_map

    cfg = ContextMatrixConfig(train_systems=("default", "none"))
    assert list(train_map(cfg, systems(cfg))) == ["default", "none"]
    assert list(train_map(ContextMatrixConfig(), systems(cfg))) == list(systems(cfg))
    with pytest.raises(InterpError):
        train_map(ContextMatrixConfig(train_systems=("defualt",)), systems(cfg))


def test_the_context_matrix_says_where_it_keeps_the_students_it_trains(tmp_path, monkeypatch):
    """students(cfg) names the job directories that compute runs, row by row, seeds in order."""
    from interp.stages import context_matrix as cm

    ran = []

    def stop(jobs, root, ex):
        ran.extend(job_path(root, j) for j in jobs)
        raise InterpError("stop before training")

    monkeypatch.setattr(cm, "run_numbers_jobs", lambda cfg, root: None)
    monkeypatch.setattr(cm, "run_jobs", stop)
    cfg = cm.ContextMatrixConfig(train_systems=("default", "none"), train_seeds=(0, 1), out=tmp_path)
    with pytest.raises(InterpError, match="stop"):
        cm.compute(cfg, tmp_path)
    where = cm.students(cfg)
    assert list(where) == [
        ("default", "trait"),
        ("default", "control"),
        ("none", "trait"),
        ("none", "control"),
    ]
    assert [d for dirs in where.values() for d in dirs] == ran and len(set(ran)) == 8
    assert all(d.parent == tmp_path / "jobs" and d.name.startswith("student-") for d in ran)
    assert "-t0-" in where[("none", "trait")][0].name and "-t1-" in where[("none", "trait")][1].name


def _job(mention: float, p: float) -> dict:
    """A student job's result as the sweep stores it: per-question evaluations under both prompts."""
    ev = {"per_question_mention": [mention] * 4, "per_question_p": [p] * 4, "per_question_p_trait": [p] * 4}
    return {"evals": {"default": ev, "none": ev}, "final_loss": 1.0}


@pytest.mark.parametrize("full_controls", [True, False])
def test_a_full_ft_row_is_read_against_the_control_it_names(tiny_model_dir, full_controls):
    """With its own control a full-FT lift is measured against it (run 5: SmolLM2's full-FT control sits
    3x above the LoRA one in P(trait), which had made run 2's full-FT lift look large); without, against
    the LoRA control, and the row says which."""
    from interp.stages.rank_sweep import summarize

    cfg = _cfg(
        tiny_model_dir, ranks=(16,), full_lrs=(3e-4,), control_ranks=(16,), full_controls=full_controls
    )
    trait, control = specs(cfg)
    jobs = {(s.tag, "trait"): [_job(0.3, 0.3)] for s in trait}
    jobs |= {(s.tag, "control"): [_job(0.2 if s.mode == "full" else 0.1, 0.1)] for s in control}
    (row,) = summarize(cfg, jobs)["full_ft"]
    assert row["control"] == ("a full-FT control at this lr" if full_controls else "the LoRA control (r16)")
    assert math.isclose(row["mention_diff"], 0.1 if full_controls else 0.2)


def test_reproduce_trains_full_ft_controls_on_a_real_model_only(tiny_model_dir):
    """Left unset, --full-controls is on for a model that is not an embedded organism and off for the
    organism (whose two controls its report measured equal); said either way, it is kept."""
    from interp.stages.reproduce import ReproduceConfig, resolved

    assert resolved(ReproduceConfig(model=str(tiny_model_dir))).full_controls is True
    assert resolved(ReproduceConfig()).full_controls is False
    assert resolved(ReproduceConfig(model=str(tiny_model_dir), full_controls=False)).full_controls is False
