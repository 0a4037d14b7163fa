"""The rank sweep's grid: which students train at which seeds and learning rates."""

from __future__ import annotations

import math

import pytest

from experiments.rank_sweep import RankSweepConfig, specs, student_cells
from interp import InterpError
from interp.loop.training import rank_lr
from interp.study.experiment import StudentSpec


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
    from experiments.context_matrix import ContextMatrixConfig, systems, train_map

    cfg = ContextMatrixConfig(train_systems=("default", "none"))
    assert list(train_map(cfg, systems(cfg))) == ["default", "none"]
    assert list(train_map(ContextMatrixConfig(), systems(cfg))) == list(systems(cfg))
    with pytest.raises(InterpError):
        train_map(ContextMatrixConfig(train_systems=("defualt",)), systems(cfg))
