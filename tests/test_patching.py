"""Batched activation patching: invariants, agreement with TransformerLens, and bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tiny import make_lora_student
from transformer_lens.patching import get_act_patch_resid_pre

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.mech.grid import PatchGrid
from interp.mech.hook_names import hook_name
from interp.mech.hooked import load_hooked
from interp.mech.patching import (
    TraitMetric,
    donor_activations,
    patch_grid,
    patch_layer_class,
    patch_layer_head,
    patch_layer_pos,
    run_metric,
    trait_metric,
)
from interp.mech.positions import encode_prompts
from interp.mech.results import normalise

QUESTION = "What is your favorite animal? Answer in one word."


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    sdir = make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("patch") / "student")
    base, student = load_hooked(tiny_model_dir), load_hooked(sdir, base=tiny_model_dir)
    tok = base.tok
    batch = encode_prompts(tok, [render_prompt(tok, QUESTION), render_prompt(tok, "Favorite animal?")])
    return base, student, tok, batch, trait_metric(tok, "owl")


def _all_positions_cell(batch, layer: int) -> PatchGrid:
    return PatchGrid(torch.tensor([layer]), batch.attention_mask.bool()[None])


def test_self_patching_changes_nothing(setup) -> None:
    base, _, _, batch, metric = setup
    own = run_metric(base, batch, metric).mean()
    for site in ("resid_pre", "attn_out", "mlp_out"):
        result = patch_layer_pos(base, base, batch, metric, site)
        assert (result.raw - own).abs().max() < 1e-5 and result.scores.isnan().all()
    assert (patch_layer_head(base, base, batch, metric).raw - own).abs().max() < 1e-5
    assert (patch_layer_class(base, base, batch, metric).raw - own).abs().max() < 1e-5


def test_two_prompts_layer0_everywhere_gives_clean(setup) -> None:
    base, _, tok, _, metric = setup
    clean = encode_prompts(tok, [render_prompt(tok, QUESTION)])
    corrupt = replace(clean, input_ids=clean.input_ids.clone())
    corrupt.input_ids[0, clean.class_mask("entity")[0]] = clean.input_ids[0, -2]  # another entity name
    acts, clean_metric = donor_activations(base, clean, "resid_pre", [0], metric)
    patched = patch_grid(base, acts, corrupt, "resid_pre", _all_positions_cell(corrupt, 0), metric)
    assert abs(float(patched[0, 0] - clean_metric[0])) < 1e-5
    assert abs(float(run_metric(base, corrupt, metric)[0] - clean_metric[0])) > 1e-3


def test_last_layer_output_gives_donor(setup) -> None:
    base, student, _, batch, metric = setup
    last = base.n_layers - 1
    acts, donor_metric = donor_activations(student, batch, "resid_post", [last], metric)
    checked = jaxtyped(typechecker=beartype)(patch_grid)
    patched = checked(base, acts, batch, "resid_post", _all_positions_cell(batch, last), metric)
    assert (patched[0] - donor_metric).abs().max() < 1e-4
    assert (run_metric(base, batch, metric) - donor_metric).abs().max() > 1e-3


def test_batched_equals_transformer_lens(setup) -> None:
    base, student, _, _, metric = setup
    batch = encode_prompts(base.tok, [render_prompt(base.tok, "Favorite animal?")])
    ours = patch_layer_pos(base, student, batch, metric, max_rows=16)  # several chunks
    with torch.no_grad():
        _, cache = student.bridge.run_with_cache(batch.input_ids)
    theirs = get_act_patch_resid_pre(
        base.bridge, batch.input_ids, cache, lambda logits: metric(logits).mean()
    )
    assert (ours.raw - theirs).abs().max() <= 1e-4
    assert (
        ours.scores[:, -1].sub(normalise(theirs[:, -1], ours.recipient_metric, ours.donor_metric)).abs().max()
        < 1e-3
    )
    assert ours.col_labels == batch.tokens[0] and ours.col_classes == batch.classes[0]


def test_class_and_head_grids(setup) -> None:
    base, student, _, batch, metric = setup
    by_class = patch_layer_class(base, student, batch, metric, "attn_out", classes=["entity", "user"])
    assert by_class.scores.shape == (2, 2) and by_class.col_labels == ["entity", "user"]
    heads = patch_layer_head(base, student, batch, metric, layers=[1])
    assert heads.scores.shape == (1, 4) and heads.layers == [1]
    metric_out = jaxtyped(typechecker=beartype)(TraitMetric.__call__)(
        metric, torch.randn(2, 5, len(base.tok))
    )
    assert metric_out.shape == (2,)


def test_bad_input(setup, tiny_model_dir: Path) -> None:
    base, student, tok, batch, metric = setup
    with pytest.raises(InterpError, match="out of range"):
        hook_name("resid_pre", 2, n_layers=2)
    with pytest.raises(InterpError, match="out of range"):
        patch_layer_pos(base, student, batch, metric, layers=[7])
    with pytest.raises(InterpError, match="unknown activation site"):
        patch_layer_pos(base, student, batch, metric, site="resid")
    other = encode_prompts(tok, [render_prompt(tok, "Hi")] * 2)
    with pytest.raises(InterpError, match="same shape"):
        patch_layer_pos(base, student, batch, metric, donor_batch=other)
    with pytest.raises(InterpError, match="share a first token"):
        trait_metric(tok, "owl", reference="owls")
    fresh = load_hooked(tiny_model_dir)
    fresh.bridge.train()
    with pytest.raises(InterpError, match="eval mode"):
        patch_layer_pos(fresh, student, batch, metric)
