"""`patched(...)`: one intervention as a context manager, exact, removed on exit, composable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import make_lora_student

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.mech.hook_names import hook_name
from interp.mech.hooked import load_hooked
from interp.mech.intervene import ZERO, Add, Replace, patched
from interp.mech.positions import encode_prompts, no_positions
from interp.mech.restrict import lora_sites, restrict_lora

PROMPTS = ("What is your favorite animal?", "Which animal do you like best of all? One word.")


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    sdir = make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("iv") / "student", scale=4.0)
    base = load_hooked(tiny_model_dir)
    student = load_hooked(sdir, base=tiny_model_dir, merge=False)
    batch = encode_prompts(base.tok, [render_prompt(base.tok, p) for p in PROMPTS])
    return base, student, batch


def _run(hooked, batch):
    with torch.no_grad():
        return hooked.bridge(batch.input_ids, attention_mask=batch.attention_mask)


def _cache(hooked, batch, name):
    with torch.no_grad():
        _, cache = hooked.bridge.run_with_cache(
            batch.input_ids, names_filter=[name], attention_mask=batch.attention_mask
        )
    return cache[name]


def test_replacing_the_last_residual_with_the_students_gives_the_students_logits(models):
    base, student, batch = models
    last = base.n_layers - 1
    donor = _cache(student, batch, hook_name("resid_post", last))
    with patched(base, "resid_post", last, Replace(donor)):
        logits = _run(base, batch)
    real = batch.attention_mask.bool()
    assert (logits - _run(student, batch))[real].abs().max() <= 1e-5
    assert (_run(base, batch) - _run(student, batch))[real].abs().max() > 1e-3  # the patch did something
    assert torch.equal(_run(base, batch), _run(base, batch))  # and it was removed


def test_a_masked_patch_leaves_earlier_positions_alone_and_adds_exactly(models):
    base, _, batch = models
    clean = _run(base, batch)
    width = batch.input_ids.shape[1]
    mask = torch.zeros(width, dtype=torch.bool)
    mask[-3:] = True
    with patched(base, "resid_pre", 1, ZERO, positions=mask):
        zeroed = _run(base, batch)
    real = batch.attention_mask.bool()
    early = real.clone()
    early[:, -3:] = False
    assert torch.equal(zeroed[early], clean[early])  # causal: real tokens before the patch are unchanged
    assert (zeroed[:, -3:] - clean[:, -3:]).abs().max() > 1e-3
    v = torch.randn(base.bridge.cfg.d_model)
    last = base.n_layers - 1
    resid = _cache(base, batch, hook_name("resid_post", last))
    with patched(base, "resid_post", last, Add(v, scale=2.0), positions=mask):
        added = _run(base, batch)
    by_hand = base.bridge.unembed(base.bridge.ln_final(resid[:, -3:] + 2.0 * v))
    assert (added[:, -3:] - by_hand).abs().max() <= 1e-4
    assert torch.equal(added[early], clean[early])


def test_patched_composes_with_restrict_lora(models):
    """Adapter gated off everywhere + the student's last residual patched in = the student's logits."""
    base, student, batch = models
    last = student.n_layers - 1
    donor = _cache(student, batch, hook_name("resid_post", last))
    real = batch.attention_mask.bool()
    with restrict_lora(student.bridge, student.tok, no_positions()):
        off = _run(student, batch)
        with patched(student, "resid_post", last, Replace(donor)):
            both = _run(student, batch)
    assert (off - _run(base, batch))[real].abs().max() <= 1e-5  # gate alone: the base model
    assert (both - _run(student, batch))[real].abs().max() <= 1e-5  # gate + patch: the student again
    # the bridge's blocks are found structurally, so layer / module restrictions work on it too
    assert set(lora_sites(student.bridge).values()) == {
        (i, k) for i in range(student.n_layers) for k in ("attn", "mlp")
    }


def test_patched_runs_inside_generation_and_is_removed_after(models):
    base, _, batch = models
    v = 50 * torch.randn(base.bridge.cfg.d_model)
    ids = batch.input_ids[:1, batch.attention_mask[0].bool()]
    plain = base.bridge.generate(ids, max_new_tokens=4, do_sample=False, verbose=False)
    with patched(base, "resid_post", base.n_layers - 1, Add(v)):
        steered = base.bridge.generate(ids, max_new_tokens=4, do_sample=False, verbose=False)
    mask = torch.ones(ids.shape[1], dtype=torch.bool)
    with patched(base, "resid_post", base.n_layers - 1, Add(v), positions=mask):  # prompt-only mask
        prompt_only = base.bridge.generate(ids, max_new_tokens=4, do_sample=False, verbose=False)
    assert not torch.equal(plain, steered)
    assert prompt_only.shape == plain.shape
    assert torch.equal(plain, base.bridge.generate(ids, max_new_tokens=4, do_sample=False, verbose=False))


def test_bad_interventions_are_clear_errors(models):
    base, _, _ = models
    with pytest.raises(InterpError, match="no head axis"):
        with patched(base, "resid_pre", 0, ZERO, heads=torch.ones(4, dtype=torch.bool)):
            pass
    with pytest.raises(InterpError, match="out of range"):
        with patched(base, "resid_pre", 9, ZERO):
            pass
    with pytest.raises(InterpError, match="Replace"):
        with patched(base, "resid_pre", 0, torch.zeros(3)):
            pass


def test_a_replace_that_does_not_fit_is_one_clear_error(models):
    base, _, batch = models
    ids, mask = batch.input_ids, batch.attention_mask
    short = torch.zeros(ids.shape[0], ids.shape[1] - 2, base.bridge.cfg.d_model)  # a shorter donor cache
    with pytest.raises(InterpError, match="does not fit the activation"):
        with patched(base, "resid_pre", 1, Replace(short)):
            base.bridge(ids, attention_mask=mask)
    other_batch = torch.zeros(ids.shape[0] + 1, ids.shape[1], base.bridge.cfg.d_model)
    with pytest.raises(InterpError, match="does not fit the activation"):
        with patched(
            base, "resid_pre", 1, Replace(other_batch), positions=torch.ones(ids.shape[1], dtype=torch.bool)
        ):
            base.bridge(ids, attention_mask=mask)
