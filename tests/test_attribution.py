"""Attribution patching agrees with exact patching where the linear estimate must hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import make_lora_student

from interp.loop.chat import render_prompt
from interp.mech.attribution import (
    agreement,
    attribute_layer_class,
    attribute_layer_head,
    attribute_layer_pos,
)
from interp.mech.hooked import load_hooked
from interp.mech.patching import patch_layer_class, patch_layer_head, patch_layer_pos, trait_metric
from interp.mech.positions import encode_prompts


@pytest.fixture(scope="module")
def near_pair(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Base and a student whose adapter is small: patching effects are then linear, so the answer is known."""
    sdir = make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("attr") / "student", scale=0.02)
    base, student = load_hooked(tiny_model_dir), load_hooked(sdir, base=tiny_model_dir)
    tok = base.tok
    batch = encode_prompts(
        tok, [render_prompt(tok, "What is your favorite animal?"), render_prompt(tok, "Hi")]
    )
    return base, student, batch, trait_metric(tok, "owl")


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out"])
def test_attribution_matches_exact_by_position(near_pair, site: str) -> None:
    base, student, batch, metric = near_pair
    exact = patch_layer_pos(base, student, batch, metric, site)
    approx = attribute_layer_pos(base, student, batch, metric, site)
    assert approx.method == "attribution" and approx.scores.shape == exact.scores.shape
    assert agreement(exact, approx)["pearson"] > 0.95


def test_attribution_matches_exact_by_class_and_head(near_pair) -> None:
    base, student, batch, metric = near_pair
    stats = agreement(
        patch_layer_head(base, student, batch, metric), attribute_layer_head(base, student, batch, metric)
    )
    assert stats["pearson"] > 0.95 and stats["n_cells"] == 8
    exact = patch_layer_class(base, student, batch, metric, "mlp_out")
    approx = attribute_layer_class(base, student, batch, metric, "mlp_out")
    assert agreement(exact, approx)["pearson"] > 0.95


def test_zero_difference_gives_zero_estimate(near_pair) -> None:
    base, student, batch, metric = near_pair
    approx = attribute_layer_pos(
        base, student, batch, metric, "resid_pre", layers=[0]
    )  # embeddings are shared
    assert torch.allclose(approx.raw, torch.tensor(approx.recipient_metric), atol=1e-6)
