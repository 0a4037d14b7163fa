"""The organism report's student grid: every student has its control, and the rank lr rule is stated."""

from __future__ import annotations

import math

import pytest

from experiments.organism_report import main
from interp import InterpError
from interp.stages.organism_report import ReportConfig, control_for, lora_lr, student_grid, summarise


def test_sqrt_rule_scales_only_ranks_above_the_main_rank():
    cfg = ReportConfig(lora_lr=4e-3, main_rank=16)
    assert lora_lr(cfg, 4, "sqrt") == 4e-3 and lora_lr(cfg, 16, "sqrt") == 4e-3
    assert math.isclose(lora_lr(cfg, 64, "sqrt"), 2e-3)
    assert lora_lr(cfg, 64, "paper") == 4e-3


def test_grid_gives_every_student_a_control_at_its_seed():
    grid = student_grid(ReportConfig(traits=("owl", "wolf"), seeds=(0, 1, 2)))
    pairs = {(s.name, s.seed) for s in grid}
    for s in grid:
        if not s.name.startswith("control"):
            assert (control_for(s.name), s.seed) in pairs, s.name
    assert sum(s.name == "wolf/lora_r16" for s in grid) == 3
    assert {s.lr for s in grid if s.name == "owl/lora_r64"} == {3e-3 * 0.5}
    assert {s.lr for s in grid if s.name == "owl/lora_r64_paper_lr"} == {3e-3}


def test_summary_compares_each_student_with_its_own_control():
    def run(name, data, mention, seed=0):
        ev = {"per_question_mention": [mention] * 4, "per_question_p": [mention] * 4}
        return {"name": name, "data": data, "seed": seed, "evals": {"owl": {"default": ev, "none": ev}}}

    students = [run("control", "control", 0.1), run("owl/lora_r16", "owl", 0.3)]
    students += [run("control_full_lr0.0003", "control", 0.2), run("owl/full_lr0.0003", "owl", 0.2)]
    s = summarise(students, ("owl",))
    assert s["owl/lora_r16"]["default"]["mention_ratio"] == pytest.approx(3.0)
    assert s["owl/full_lr0.0003"]["default"]["mention_diff"] == pytest.approx(0.0)


def test_unknown_trait_is_rejected_before_any_work(tmp_path):
    """The traits are checked against the organism's own animals (the error lists them), before any output."""
    with pytest.raises(InterpError, match=r"--traits 'unicorn' is not one of .*owl, cat"):
        main(ReportConfig(model="organism-tied", traits=("wolf", "unicorn"), out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(InterpError, match="at least one --traits"):
        ReportConfig(traits=())
