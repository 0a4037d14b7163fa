"""Hooked models: bridges over base, LoRA (merged / unmerged) and full-FT students, and bad adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import build_tiny_model_dir, make_full_student, make_lora_student
from transformers import Qwen2Config

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.loop.models import load_model
from interp.mech.hook_names import hook_name
from interp.mech.hooked import load_hooked
from interp.mech.positions import encode_prompts


@pytest.fixture(scope="session")
def lora_student_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("lora") / "student")


def _batch(tok):
    return encode_prompts(
        tok, [render_prompt(tok, "What is your favorite animal?"), render_prompt(tok, "Hi")]
    )


def test_bridges_match_hf_and_each_other(tiny_model_dir: Path, lora_student_dir: Path) -> None:
    base = load_hooked(tiny_model_dir)
    merged = load_hooked(lora_student_dir, base=tiny_model_dir)
    unmerged = load_hooked(lora_student_dir, base=tiny_model_dir, merge=False)
    assert (base.kind, merged.kind, unmerged.kind) == ("base", "lora_merged", "lora")
    assert unmerged.peft is not None and not base.bridge.training
    hf, tok = load_model(tiny_model_dir)
    batch = _batch(tok)
    real = batch.attention_mask.bool()
    with torch.no_grad():
        args = (batch.input_ids,)
        lb, lm, lu = (h.bridge(*args, attention_mask=batch.attention_mask) for h in (base, merged, unmerged))
        lh = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert (lb - lh)[real].abs().max() < 1e-4
    assert (lm - lu)[real].abs().max() < 1e-4
    assert (lm - lb)[real].abs().max() > 1e-2  # the adapter does something


def test_full_student(tiny_model_dir: Path, tmp_path: Path) -> None:
    full = load_hooked(make_full_student(tiny_model_dir, tmp_path / "full"))  # no base= needed
    assert full.kind == "full_ft" and full.n_layers == 2 and full.n_heads == 4
    assert load_hooked(tiny_model_dir).kind == "base"
    ids = full.tok("Hi there", return_tensors="pt")["input_ids"]
    name = hook_name("resid_pre", 1)
    logits, cache = full.run_with_cache(ids, names_filter=[name])
    assert cache[name].shape == (1, ids.shape[1], 64) and torch.allclose(logits, full.bridge(ids))


def test_adapter_for_another_base(tiny_model_dir: Path, lora_student_dir: Path, tmp_path: Path) -> None:
    other = build_tiny_model_dir(tmp_path / "other", seed=7)  # same shapes, other weights
    with pytest.raises(InterpError, match="trained from base"):
        load_hooked(lora_student_dir, base=other)
    wide = tmp_path / "wide"  # other shapes: PEFT cannot load the adapter at all
    model, tok = load_model(tiny_model_dir)
    cfg = Qwen2Config(**{**model.config.to_dict(), "hidden_size": 96, "intermediate_size": 160})
    type(model)(cfg).save_pretrained(wide)
    tok.save_pretrained(wide)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for f in lora_student_dir.iterdir():
        if f.name != "student.json":
            (adapter / f.name).write_bytes(f.read_bytes())
    with pytest.raises(InterpError, match="does not fit base"):
        load_hooked(adapter, base=wide)


def test_lora_needs_a_base(lora_student_dir: Path) -> None:
    with pytest.raises(InterpError, match="give the base model"):
        load_hooked(lora_student_dir)
