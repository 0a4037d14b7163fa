"""experiments.patch_activations end to end on a tiny base and LoRA student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny import make_lora_student

import interp.study.plots.heatmaps as plots
from experiments.patch_activations import LocalizeConfig, main
from interp import InterpError
from interp.loop.config import build_parser
from interp.mech.results import LocalizationResult


def test_localize_writes_grids_and_figures(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "_PNG_WORKS", False)  # HTML only: keep the test fast
    student = make_lora_student(tiny_model_dir, tmp_path / "student")
    cfg = LocalizeConfig(
        student=student,
        base=tiny_model_dir,
        trait="owl",
        n_prompts=2,
        sites=("resid_pre",),
        out=tmp_path / "run",
    )
    run = main(cfg)
    scores = json.loads((run / "scores.json").read_text())
    assert set(scores["grids"]) == {
        "class_resid_pre",
        "pos_resid_pre_p0",
        "heads",
        "attribution_resid_pre_p0",
    }
    assert -1 <= scores["attribution_agreement"]["pearson"] <= 1
    assert (run / "figures" / "pos_resid_pre_p0.html").exists() and (run / "config.json").exists()
    grid = LocalizationResult.load(run / "tensors", "class_resid_pre")
    assert "entity" in grid.col_labels and grid.config["direction"] == "denoise"


def test_help_and_bad_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert "--position-prompts" in build_parser(LocalizeConfig).format_help()
    with pytest.raises(InterpError, match="--student is required"):
        main(LocalizeConfig(base=tiny_model_dir, out=tmp_path / "x"))
    with pytest.raises(InterpError, match="unknown activation site"):
        LocalizeConfig(sites=("resid",))
