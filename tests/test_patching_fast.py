"""Patched runs resumed from the recipient's run (layer skipping, cached prefix keys/values) are exact.

They must equal the plain batched path (every patched pass from the embeddings) and TransformerLens's
per-cell patching, on tiny models, with several left-padded prompts and patches at both ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tiny import make_lora_student
from tolerance import score_atol
from transformer_lens.patching import get_act_patch_resid_pre

from interp.loop.chat import render_prompt
from interp.mech import grid as grid_mod
from interp.mech import resume as resume_mod
from interp.mech.columns import position_columns
from interp.mech.grid import PatchGrid
from interp.mech.hooked import load_hooked
from interp.mech.patching import (
    TraitMetric,
    donor_activations,
    patch_grid,
    patch_layer_class,
    patch_layer_head,
    patch_layer_pos,
    trait_metric,
)
from interp.mech.positions import ENTITY, encode_prompts
from interp.mech.resume import recipient_run
from interp.mech.sets import patch_layer_set

PROMPTS = (
    "What is your favorite animal? Answer in one word.",
    "Favorite animal?",
    "Which animal do you like best of all?",
)


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Base (recipient), a LoRA student that moves the metric (donor), 3 left-padded prompts, a metric."""
    sdir = make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("fast") / "student", scale=4.0)
    base, student = load_hooked(tiny_model_dir), load_hooked(sdir, base=tiny_model_dir)
    batch = encode_prompts(base.tok, [render_prompt(base.tok, p) for p in PROMPTS])
    assert len(set(batch.attention_mask.sum(1).tolist())) == 3  # three different paddings
    return base, student, batch, trait_metric(base.tok, "owl")


def _spy_resumes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the start position of every resumed pass (so a test fails if the fast path is not taken)."""
    starts: list[int] = []
    resume = resume_mod.resume_chunk

    def spy(*args, **kwargs):
        starts.append(args[5])
        return resume(*args, **kwargs)

    monkeypatch.setattr(resume_mod, "resume_chunk", spy)
    return starts


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out"])
def test_resumed_sweep_equals_plain_sweep(setup, site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base, student, batch, metric = setup
    plain = patch_layer_pos(base, student, batch, metric, site, reuse=False, max_rows=24)
    starts = _spy_resumes(monkeypatch)
    fast = patch_layer_pos(base, student, batch, metric, site, max_rows=24)
    assert min(starts) == 0 and max(starts) > 0  # resumed, and some passes skip a prefix
    assert (fast.raw - plain.raw).abs().max() <= 1e-5
    assert (plain.raw - plain.recipient_metric).abs().max() > 1e-3  # the patches do change the metric
    assert fast.recipient_metric == pytest.approx(plain.recipient_metric, abs=1e-5)


def test_final_mlp_runs_at_the_last_position_only_where_safe(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    base, student, batch, metric = setup
    assert recipient_run(base.bridge, batch).final_mlp_last_only  # checked on the recipient's run
    flags: list[bool] = []
    run_block = resume_mod._run_block
    final = base.bridge.blocks[-1]

    def spy(block, hidden, kwargs, kv, last_only_mlp=False):
        if block is final:
            flags.append(last_only_mlp)
        return run_block(block, hidden, kwargs, kv, last_only_mlp)

    monkeypatch.setattr(resume_mod, "_run_block", spy)
    patch_layer_pos(base, student, batch, metric, "resid_pre", max_rows=24)
    assert flags and all(flags)
    flags.clear()  # an mlp_out patch in the final block needs that block's MLP at every position
    patch_layer_pos(base, student, batch, metric, "mlp_out", max_rows=24)
    assert True in flags[1:] and False in flags[1:]  # (the first call is the recipient run's check)


def test_resumed_cells_equal_transformer_lens_per_prompt(setup) -> None:
    """Each left-padded prompt's column of a batched sweep equals TransformerLens on that prompt alone."""
    base, student, batch, metric = setup
    n_layers, width = base.n_layers, batch.input_ids.shape[1]
    cols, _ = position_columns(batch)
    cells = PatchGrid(torch.arange(n_layers).repeat_interleave(width), cols.repeat(n_layers, 1, 1))
    acts, _ = donor_activations(student, batch, "resid_pre", list(range(n_layers)))
    checked = jaxtyped(typechecker=beartype)(patch_grid)
    ours = checked(base, acts, batch, "resid_pre", cells, metric).view(n_layers, width, len(PROMPTS))
    for b in range(len(PROMPTS)):
        pad = int(width - batch.attention_mask[b].sum())
        ids = batch.input_ids[b : b + 1, pad:]
        with torch.no_grad():
            _, cache = student.bridge.run_with_cache(ids)
        theirs = get_act_patch_resid_pre(base.bridge, ids, cache, lambda logits: metric(logits).mean())
        assert (ours[:, pad:, b] - theirs).abs().max() <= 1e-4


def test_both_ends_classes_and_heads(setup) -> None:
    """Position 0 (padding in two prompts), the first real token of every prompt, the last position;
    token classes; attention heads: resumed equals plain."""
    base, student, batch, metric = setup
    first_real = int(batch.attention_mask.argmax(1).max())
    for site in ("resid_pre", "attn_out", "mlp_out"):
        positions = [0, first_real, -1]
        fast = patch_layer_pos(base, student, batch, metric, site, positions=positions)
        plain = patch_layer_pos(base, student, batch, metric, site, positions=positions, reuse=False)
        assert (fast.raw - plain.raw).abs().max() <= 1e-5
    fast = patch_layer_class(base, student, batch, metric, "mlp_out")
    assert (
        fast.raw - patch_layer_class(base, student, batch, metric, "mlp_out", reuse=False).raw
    ).abs().max() <= 1e-5
    fast = patch_layer_head(base, student, batch, metric)
    assert (fast.raw - patch_layer_head(base, student, batch, metric, reuse=False).raw).abs().max() <= 1e-5


def test_metric_over_all_positions(setup) -> None:
    """A metric that reads more than the last position gets the recipient's logits before the patch."""
    base, student, batch, _ = setup

    def last_two(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -2:].float().log_softmax(-1)[..., :7].sum((1, 2))

    fast = patch_layer_pos(base, student, batch, last_two, positions=[2, -2, -1])
    plain = patch_layer_pos(base, student, batch, last_two, positions=[2, -2, -1], reuse=False)
    assert (fast.raw - plain.raw).abs().max() <= 1e-4
    assert (plain.raw - plain.recipient_metric).abs().max() > 1e-3


def test_foreign_hooks_fall_back_to_full_runs(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook from outside TransformerLens (it may depend on the whole sequence) disables resuming."""
    base, student, batch, metric = setup
    assert recipient_run(base.bridge, batch) is not None
    mlp = base.bridge.blocks[0].mlp.original_component
    handle = mlp.register_forward_hook(lambda _m, _i, out: out * 1.5)
    try:
        assert recipient_run(base.bridge, batch) is None
        starts = _spy_resumes(monkeypatch)
        hooked = patch_layer_pos(base, student, batch, metric, positions=[0, -1])
        assert starts == []
        plain = patch_layer_pos(base, student, batch, metric, positions=[0, -1], reuse=False)
        assert (hooked.raw - plain.raw).abs().max() <= 1e-5
    finally:
        handle.remove()
    point = base.bridge.hook_dict["blocks.1.hook_resid_pre"]  # a hook left on a hook point, by position
    point.add_hook(lambda act, hook: act.index_fill(1, torch.tensor([3]), 0.0))
    try:
        assert recipient_run(base.bridge, batch) is None
    finally:
        point.remove_hooks()
    assert recipient_run(base.bridge, batch) is not None


def test_partition_covers_cells_in_order() -> None:
    starts = [0, 0, 1, 5, 9, 9, 9, 12]
    groups = grid_mod.partition(starts, width=13, rows_per_cell=3, max_cells=3)
    assert [i for a, b in groups for i in range(a, b)] == list(range(len(starts)))
    assert all(0 < b - a <= 3 for a, b in groups)
    assert grid_mod.partition([0] * 4, width=10, rows_per_cell=1, max_cells=10) == [(0, 4)]


def test_trait_metric_reads_the_last_position() -> None:
    metric = TraitMetric((3,), (4,))
    logits = torch.randn(2, 5, 8)
    assert torch.equal(metric(logits), metric(logits[:, -1:]))
    assert TraitMetric.last_position_only


def test_layer_set_grid_is_the_class_and_readout_grids_it_names(setup) -> None:
    """A layer x set column patches exactly its set: the readout column is the last position (each prompt's
    own, under left padding), the entity column the entity class (which never holds the readout)."""
    base, student, batch, metric = setup
    sets = patch_layer_set(base, student, batch, metric, "resid_pre")
    assert sets.col_labels[-2:] == ["readout", "user"] and sets.col_labels[0] == ENTITY
    readout = patch_layer_pos(base, student, batch, metric, "resid_pre", positions=[-1])
    entity = patch_layer_class(base, student, batch, metric, "resid_pre", classes=[ENTITY])
    col = sets.col_labels.index
    tol = score_atol(sets)  # 1.7e-6 apart on one AVX2 machine: rounding, scaled by the donor-recipient gap
    torch.testing.assert_close(sets.scores[:, col("readout")], readout.scores[:, 0], atol=tol, rtol=0)
    torch.testing.assert_close(sets.scores[:, col(ENTITY)], entity.scores[:, 0], atol=tol, rtol=0)
    assert sets.kind == "layer_set" and sets.scores[:, col("readout")].abs().max() > 0  # it moves the metric
