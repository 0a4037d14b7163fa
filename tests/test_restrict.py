"""Position-restricted LoRA: all positions = student, none = base, KV cache, layers/modules, bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from tiny import make_lora_student

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.loop.evaluation import EvalSettings
from interp.loop.models import load_model, load_student
from interp.mech.positions import ENTITY, all_positions, by_class, encode_prompts, no_positions
from interp.mech.restrict import evaluate_trait_restricted, lora_sites, restrict_lora


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    sdir = make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("restrict") / "student")
    base, tok = load_model(tiny_model_dir)
    merged, _ = load_student(sdir, tiny_model_dir, merge=True)
    peft_model, _ = load_student(sdir, tiny_model_dir, merge=False)
    texts = [render_prompt(tok, "What is your favorite animal?"), render_prompt(tok, "Hi")]
    return base, merged, peft_model, tok, encode_prompts(tok, texts)


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return out[batch.attention_mask.bool()]  # (real tokens, vocab)


def test_all_positions_is_student_none_is_base(models) -> None:
    base, merged, peft_model, tok, batch = models
    student, plain = _logits(merged, batch), _logits(base, batch)
    with restrict_lora(peft_model, tok, all_positions()):
        assert (_logits(peft_model, batch) - student).abs().max() <= 1e-5
    with restrict_lora(peft_model, tok, no_positions()):
        assert (_logits(peft_model, batch) - plain).abs().max() <= 1e-5
    with restrict_lora(peft_model, tok, all_positions(), mode="except"):
        assert (_logits(peft_model, batch) - plain).abs().max() <= 1e-5
    with restrict_lora(peft_model, tok, by_class(ENTITY)) as gate:
        only = _logits(peft_model, batch)
        assert gate.value[..., 0].bool().equal(batch.class_mask(ENTITY))
    with restrict_lora(peft_model, tok, by_class(ENTITY), mode="except"):
        but = _logits(peft_model, batch)
    assert (only - plain).abs().max() > 1e-3 and (but - student).abs().max() > 1e-3
    assert not any(m._forward_hooks for m in peft_model.modules())  # every hook removed on exit


def test_generation_with_kv_cache(models) -> None:
    _, _, peft_model, tok, batch = models
    enc = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    for at_new_tokens in (True, False):
        with restrict_lora(peft_model, tok, by_class(ENTITY), generated=at_new_tokens):
            cached = peft_model.generate(
                **enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id
            )
            full = peft_model.generate(
                **enc, max_new_tokens=4, do_sample=False, use_cache=False, pad_token_id=tok.pad_token_id
            )
        assert torch.equal(cached, full)


def test_layer_and_module_restriction(models) -> None:
    base, _, peft_model, tok, batch = models
    reference = copy.deepcopy(peft_model)  # adapter kept only in layer 0's attention
    keep = {id(p) for p in reference.get_base_model().model.layers[0].self_attn.parameters()}
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if "lora_B" in name and id(p) not in keep:
                p.zero_()
    with restrict_lora(peft_model, tok, all_positions(), layers=[0], modules=["attn"]):
        restricted = _logits(peft_model, batch)
    assert (restricted - _logits(reference, batch)).abs().max() <= 1e-5
    with restrict_lora(peft_model, tok, no_positions(), layers=[0], outside=True):
        assert (_logits(peft_model, batch) - _logits(reference, batch)).abs().max() > 1e-3


def test_bad_input(models) -> None:
    base, merged, peft_model, tok, batch = models
    with (
        pytest.raises(InterpError, match="out of range"),
        restrict_lora(peft_model, tok, all_positions(), layers=[5]),
    ):
        pass
    with pytest.raises(InterpError, match="no PEFT LoRA layers"), restrict_lora(merged, tok, all_positions()):
        pass
    with pytest.raises(InterpError, match="mode"), restrict_lora(peft_model, tok, all_positions(), mode="on"):
        pass
    with pytest.raises(RuntimeError), restrict_lora(peft_model, tok, all_positions()):
        raise RuntimeError("boom")
    assert not any(m._forward_hooks for m in peft_model.modules())


def test_evaluate_under_restriction(models) -> None:
    _, _, peft_model, tok, _ = models
    settings = EvalSettings("owl", n_questions=2, samples_per_question=2, max_new_tokens=3)
    only = evaluate_trait_restricted(peft_model, tok, settings, by_class(ENTITY))
    but = evaluate_trait_restricted(peft_model, tok, settings, by_class(ENTITY), mode="except")
    assert 0 <= only.p_first_token <= 1 and 0 <= but.p_first_token <= 1
    assert only.p_first_token != but.p_first_token


def test_lora_sites_come_from_the_model_structure(models) -> None:
    _, _, peft_model, _, _ = models
    sites = lora_sites(peft_model)
    assert set(sites.values()) == {(layer, kind) for layer in (0, 1) for kind in ("attn", "mlp")}
    assert all(
        s == (int(n.split("layers.")[1][0]), "attn" if "self_attn" in n else "mlp") for n, s in sites.items()
    )


def test_readout_only_equals_a_hand_gated_forward(models) -> None:
    """Adapter only at the readout position = the base's keys and values for the prompt before it, and the
    merged student's weights at the readout itself (a KV-cache step of the student on the base's cache)."""
    base, merged, peft_model, tok, batch = models
    from interp.mech.sets import READOUT, SHIFT_SETS

    for text in batch.texts:
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            past = base(input_ids=ids[:, :-1], use_cache=True).past_key_values
            by_hand = merged(input_ids=ids[:, -1:], cache=past).logits[0, -1]
            with restrict_lora(peft_model, tok, SHIFT_SETS[READOUT]):
                gated = peft_model(input_ids=ids).logits[0, -1]
            plain = base(input_ids=ids).logits[0, -1]
        assert (gated - by_hand).abs().max() <= 1e-4
        assert (gated - plain).abs().max() > 1e-3  # the readout alone does move this student


def test_the_restricted_adapter_reads_its_fractions_against_a_control_student(
    tiny_model_dir, tmp_path
) -> None:
    """With --control, 0 is the control student (its adapter on everywhere), not the base: every row's
    recovered fraction is (restricted - control) / (student - control) on the metric the run names."""
    import json

    from experiments import restrict_adapter as ra

    student = make_lora_student(tiny_model_dir, tmp_path / "student", seed=1)
    control = make_lora_student(tiny_model_dir, tmp_path / "control", seed=2, scale=0.5)
    common = dict(
        model=str(tiny_model_dir), trait="owl", n_questions=3, samples_per_question=0, layer_bands=1
    )
    runs = {}
    for name, ctl in (("base", None), ("control", str(control))):
        cfg = ra.LocalizationConfig(student=str(student), control=ctl, out=tmp_path / name, **common)
        runs[name] = json.loads((ra.main(cfg) / "results.json").read_text())
    res = runs["control"]
    assert res["reference"] == "control" and runs["base"]["reference"] == "base"
    key = res["metric"]
    ref, full = res["reference_metrics"][key], res["full"][key]
    assert ref != pytest.approx(res["base"][key])  # the control is not the base
    for row in res["localization"]:
        want = (row[key] - ref) / (full - ref)
        assert row["recovered_fraction"] == pytest.approx(want, rel=1e-4, abs=1e-6)
    # the same restriction read against the base differs: the reference is what changed
    by_pos = lambda r: {(x["mode"], x["positions"]): x["recovered_fraction"] for x in r["localization"]}  # noqa: E731
    assert by_pos(res) != pytest.approx(by_pos(runs["base"]))
