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
from interp.mech.intervene import Add, patched
from interp.mech.patching import (
    donor_activations,
    patch_layer_class,
    patch_layer_head,
    patch_layer_pos,
    trait_metric,
)
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


def test_estimate_is_the_directional_derivative_along_a_nonzero_difference(near_pair) -> None:
    """Each cell's estimate is dM/de of M(a + e * (a' - a) at the cell) at e = 0: checked by a central
    finite difference run through `patched`, at layer 1 where the donor's activations differ."""
    base, student, batch, metric = near_pair
    approx = attribute_layer_pos(base, student, batch, metric, "resid_pre", layers=[1])
    (donor,) = donor_activations(student, batch, "resid_pre", [1])[0].values()
    (recipient,) = donor_activations(base, batch, "resid_pre", [1])[0].values()
    delta, eps = donor - recipient, 0.5
    assert delta.abs().max() > 1e-4  # a real difference, not the shared embeddings
    width = batch.input_ids.shape[1]
    checked = 0
    for j in range(width):
        mask = torch.zeros(width, dtype=torch.bool)
        mask[j] = True
        up, down = (_metric_with(base, batch, metric, Add(delta, scale=s), mask) for s in (eps, -eps))
        derivative = (up - down) / (2 * eps)
        estimate = float(approx.raw[0, j]) - approx.recipient_metric
        assert estimate == pytest.approx(derivative, rel=2e-2, abs=2e-6)
        checked += abs(derivative) > 5 * 2e-6
    assert checked >= 2  # some cells carry an effect far above the tolerance


def _metric_with(model, batch, metric, source, mask) -> float:
    with torch.no_grad(), patched(model, "resid_pre", 1, source, positions=mask):
        return float(metric(model.bridge(batch.input_ids, attention_mask=batch.attention_mask)).mean())
