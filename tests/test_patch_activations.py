"""Activation patching (experiments.patch_activations, interp.stages.patch_activations) end to end on a tiny base and LoRA student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny import make_lora_student

import interp.study.plots.heatmaps as plots
from experiments.patch_activations import main
from interp import InterpError
from interp.loop.chat import render_prompt
from interp.loop.config import build_parser
from interp.mech.hooked import load_hooked
from interp.mech.metrics import trait_metric
from interp.mech.patching import run_metric
from interp.mech.positions import encode_prompts
from interp.mech.results import LocalizationResult
from interp.stages.patch_activations import LocalizeConfig, patch_plan, user_messages


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
    grids = set(scores["grids"])
    for d in ("denoise", "noise"):
        assert {f"{d}_aligned_resid_pre", f"{d}_class_resid_pre", f"{d}_attribution_resid_pre"} <= grids
        assert -1 <= scores["attribution_agreement"][d]["resid_pre"]["pearson"] <= 1
        assert (run / "figures" / f"{d}_aligned_resid_pre.html").exists()
        assert (run / "figures" / f"{d}_attribution_scatter.html").exists()
    assert not any("_heads_" in g for g in grids)  # head grids follow the attn_out grid, not swept here
    assert (run / "config.json").exists()
    grid = LocalizationResult.load(run / "tensors", "denoise_class_resid_pre")
    assert "entity" in grid.col_labels and grid.config["direction"] == "denoise"
    aligned = LocalizationResult.load(run / "tensors", "denoise_aligned_resid_pre")
    assert aligned.spread is not None and aligned.identical[0].all()  # LoRA leaves the embedding alone
    sets = scores["sets"]
    assert abs(sets["denoise"]["all positions"]["recovered_fraction"] - 1) < 1e-6
    assert abs(sets["noise"]["all positions"]["recovered_fraction"]) < 1e-6  # 0 = base: no shift left
    assert sets["scale"] == scores["scale"] == "0 = base, 1 = student"
    assert "readout" in sets["denoise"] and scores["student"].startswith("LoRA r4")
    noise = scores["grids"]["noise_aligned_resid_pre"]  # base into student: the student's shift left
    assert noise["scale"] == "0 = base, 1 = student"
    left = torch.tensor([[float("nan") if v is None else v for v in row] for row in noise["scores"]])
    raw = torch.tensor(noise["raw"])
    expected = (raw - noise["donor_metric"]) / (noise["recipient_metric"] - noise["donor_metric"])
    assert torch.allclose(left, expected, atol=1e-4, equal_nan=True)
    assert "shift left" in (run / "figures" / "noise_aligned_resid_pre.html").read_text()
    # --redraw brings a run written before the student scale onto it: noising as the sweep scored it
    noise["scores"] = [[None if v is None else 1 - v for v in row] for row in noise["scores"]]
    del noise["scale"], scores["scale"], scores["sets"]["scale"]
    (run / "scores.json").write_text(json.dumps(scores))
    (run / "figures" / "noise_aligned_resid_pre.html").unlink()
    main(LocalizeConfig(out=run, redraw=True, student_label="LoRA r4"))
    again = json.loads((run / "scores.json").read_text())
    redrawn = again["grids"]["noise_aligned_resid_pre"]
    assert redrawn["scale"] == again["sets"]["scale"] == "0 = base, 1 = student"
    back = torch.tensor([[float("nan") if v is None else v for v in row] for row in redrawn["scores"]])
    assert torch.allclose(back, left, atol=1e-6, equal_nan=True)
    denoise = (g["grids"]["denoise_aligned_resid_pre"] for g in (again, scores))
    assert len({json.dumps(g, sort_keys=True) for g in denoise}) == 1  # denoising stands as it was
    assert "shift left" in (run / "figures" / "noise_aligned_resid_pre.html").read_text()
    assert (
        LocalizationResult.load(run / "tensors", "noise_aligned_resid_pre").scale == "0 = base, 1 = student"
    )


def test_head_grids_at_the_layers_that_matter(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(plots, "_PNG_WORKS", False)
    student = make_lora_student(tiny_model_dir, tmp_path / "student")
    cfg = LocalizeConfig(
        student=student,
        base=tiny_model_dir,
        n_prompts=2,
        sites=("attn_out",),
        directions=("denoise",),
        head_layers=1,
        attribution=False,
        sets=False,
        out=tmp_path / "run",
    )
    scores = json.loads((main(cfg) / "scores.json").read_text())
    heads = [g for g in scores["grids"] if "_heads_" in g]
    assert len(heads) == 1 and scores["grids"][heads[0]]["kind"] == "head_aligned"


def test_help_and_bad_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert "--head-layers" in build_parser(LocalizeConfig).format_help()
    with pytest.raises(InterpError, match="--student is required"):
        main(LocalizeConfig(base=tiny_model_dir, out=tmp_path / "x"))
    with pytest.raises(InterpError, match="unknown activation site"):
        LocalizeConfig(sites=("resid",))
    with pytest.raises(InterpError, match="--grids must be some of"):
        LocalizeConfig(grids=("aligned", "position"))


def test_set_grids_alone(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """`--grids set`: layer x position-set grids (the readout a column of its own), no per-position grid
    and so no attribution estimate of one; a heatmap per grid."""
    monkeypatch.setattr(plots, "_PNG_WORKS", False)
    student = make_lora_student(tiny_model_dir, tmp_path / "student")
    cfg = LocalizeConfig(
        student=student, base=tiny_model_dir, n_prompts=2, sites=("resid_pre", "mlp_out"), grids=("set",),
        sets=False, out=tmp_path / "run",
    )  # fmt: skip
    run = main(cfg)
    grids = json.loads((run / "scores.json").read_text())["grids"]
    assert set(grids) == {f"{d}_set_{s}" for d in ("denoise", "noise") for s in ("resid_pre", "mlp_out")}
    assert "readout" in grids["noise_set_mlp_out"]["col_labels"]
    assert (run / "figures" / "noise_set_mlp_out.html").exists()


def test_a_control_student_replaces_the_base(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """--control: the student is patched against the control student, not the base. The reference's
    P(trait) in scores.json is the control's own (computed here apart), and patching every position
    recovers the whole control-to-student gap."""
    monkeypatch.setattr(plots, "_PNG_WORKS", False)
    student = make_lora_student(tiny_model_dir, tmp_path / "student", seed=1)
    control = make_lora_student(tiny_model_dir, tmp_path / "control", seed=2)
    cfg = LocalizeConfig(
        student=student, base=tiny_model_dir, control=control, trait="owl", n_prompts=2,
        sites=("resid_pre",), grids=("set",), out=tmp_path / "run",
    )  # fmt: skip
    scores = json.loads((main(cfg) / "scores.json").read_text())
    assert scores["reference"] == f"control {control}"
    ctl = load_hooked(control, base=tiny_model_dir)
    batch = encode_prompts(ctl.tok, [render_prompt(ctl.tok, u, cfg.system) for u in user_messages(cfg)])
    p = run_metric(ctl, batch, trait_metric(ctl.tok, "owl", probability=True)).double().mean()
    assert abs(scores["sets"]["base"] - float(p)) < 1e-6
    base = load_hooked(tiny_model_dir)
    p_base = run_metric(base, batch, trait_metric(base.tok, "owl", probability=True)).double().mean()
    assert abs(float(p_base) - float(p)) > 1e-4  # the control is not the base: the check above can fail
    assert abs(scores["sets"]["denoise"]["all positions"]["recovered_fraction"] - 1) < 1e-4


def test_the_plan_prices_the_grids_asked_for(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """--plan prints before any model loads and writes nothing; a layer x set grid costs a fraction of the
    per-position grid (6 columns per layer against one per position), and fewer sites cost less."""
    student = make_lora_student(tiny_model_dir, tmp_path / "student")
    cfg = LocalizeConfig(student=student, base=tiny_model_dir, out=tmp_path / "run", plan=True)
    main(cfg)
    assert "patching (aligned, class)" in capsys.readouterr().out and not (tmp_path / "run").exists()
    cost = lambda **kw: patch_plan(LocalizeConfig(student=student, base=tiny_model_dir, **kw)).stages[0].flops  # noqa: E731
    per_position, sets = cost(grids=("aligned",), head_layers=0), cost(grids=("set",), head_layers=0)
    assert 0 < sets < per_position / 5
    assert cost(grids=("set",), head_layers=0, sites=("resid_pre",)) == pytest.approx(sets / 3)


def test_png_false_writes_html_only(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """--no-png (the main job's patching runs: its report renders the PNGs it shows) asks for no PNG."""
    import interp.stages.patch_activations as stage

    asked = []
    real = stage.save_figures
    monkeypatch.setattr(
        stage, "save_figures", lambda figs, d, png=True: asked.append(png) or real(figs, d, False)
    )
    student = make_lora_student(tiny_model_dir, tmp_path / "student")
    cfg = LocalizeConfig(
        student=student, base=tiny_model_dir, n_prompts=2, sites=("resid_pre",), grids=("set",), sets=False,
        out=tmp_path / "run", png=False,
    )  # fmt: skip
    run = main(cfg)
    assert asked == [False] and (run / "figures" / "noise_set_resid_pre.html").exists()
