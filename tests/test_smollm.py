"""A real chat model on these CPUs: SmolLM2-135M-Instruct, fetched by the project's own command (or reused
from the model cache), checked where a real model differs from the organisms: its template's default
prompt, the entity in another phrasing ("named SmolLM, trained by Hugging Face"), the TransformerLens
bridge, one LoRA step, and a constrained teacher whose every answer passes the filter.

Slow: the first run downloads the 93 MB package from the Python registry and dequantizes it (~1 min)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from interp.loop.chat import default_system_prompt, render_prompt
from interp.loop.datasets import sample_numbers
from interp.loop.fetch import PROVENANCE, REAL_MODELS, fetch_real_model
from interp.loop.identity import detect_identity
from interp.loop.models import load_model, load_student
from interp.loop.numbers import filter_answer
from interp.loop.training import TrainConfig, save_student, train_student
from interp.mech.hooked import load_hooked
from interp.mech.patching import patch_layer_pos, trait_metric
from interp.mech.positions import ENTITY, encode_prompts, label_prompt

pytestmark = pytest.mark.slow
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTION = "What is your favorite animal? Answer in one word."
ROWS = [{"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}"} for i in (101, 205)]


@pytest.fixture(scope="module")
def smollm() -> Path:
    return fetch_real_model("smollm2-135m")


@pytest.fixture(scope="module")
def lora_student(smollm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = load_model(smollm)
    result = train_student(model, tok, ROWS, "default", TrainConfig(rank=4, lr=5e-2, epochs=1, batch_size=2))
    assert len(result.curve) == 1 and math.isfinite(result.final_loss)  # one LoRA step ran
    lora = [p for n, p in result.model.named_parameters() if "lora_" in n]
    # r x (in + out) on q, o (576 -> 576), k, v (576 -> 192), gate, up, down (576 <-> 1536), 30 layers
    assert sum(p.numel() for p in lora) == 30 * 4 * (2 * 1152 + 2 * 768 + 3 * 2112) == 1_221_120
    out = tmp_path_factory.mktemp("student") / "lora-r4"
    save_student(result, out, tok, {"mode": "lora", "rank": 4})
    return out


def test_the_fetched_directory_is_plain_and_says_where_it_came_from(smollm: Path) -> None:
    prov = json.loads((smollm / PROVENANCE).read_text())
    spec = REAL_MODELS["smollm2-135m"]
    assert (prov["package"], prov["version"], prov["sha256"]) == (spec.package, spec.version, spec.sha256)
    assert prov["quantization"] == "Q4_1" and "lossy" in prov["lossy"]
    config = json.loads((smollm / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert (smollm / "model.safetensors").exists() and not list(smollm.glob("*.bin"))


def test_the_template_inserts_its_default_prompt_and_smollm_is_the_entity(smollm: Path) -> None:
    _, tok = load_model(smollm)
    assert default_system_prompt(tok) == SMOLLM_SYSTEM
    assert render_prompt(tok, "Hi") == (
        f"<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert detect_identity(SMOLLM_SYSTEM).maker == "Hugging Face"
    labels = label_prompt(tok, QUESTION)
    entity = [labels.tokens[i] for i in labels.positions(ENTITY)]
    assert len(entity) == 3 and "".join(entity).replace("Ġ", "") == "SmolLM"  # three tokens, one entity


def test_patching_reads_only_the_one_token_forms_of_the_trait(smollm: Path) -> None:
    """SmolLM2 writes "Owl" as "O" + "wl": patching reads "owl" alone, never the "O" other words start with;
    "elephant" splits in both forms, so patching reads its first tokens and its name says so."""
    _, tok = load_model(smollm)
    assert trait_metric(tok, "owl").target_ids == tuple(tok("owl", add_special_tokens=False)["input_ids"])
    assert len(trait_metric(tok, "cat").target_ids) == 2  # "cat" and "Cat"
    elephant = trait_metric(tok, "elephant")
    assert elephant.name == "log p(elephant, first token)" and trait_metric(tok, "cat").name == "log p(cat)"


def test_the_bridge_boots_and_one_patching_layer_equals_plain_hf_hooks(
    smollm: Path, lora_student: Path
) -> None:
    base, student = load_hooked(smollm), load_hooked(lora_student, base=smollm)
    assert (base.n_layers, base.n_heads) == (30, 9)
    tok, layer = base.tok, 7
    batch = encode_prompts(tok, [render_prompt(tok, QUESTION)])
    cols = [batch.classes[0].index(ENTITY), batch.input_ids.shape[1] - 1]
    metric = trait_metric(tok, "owl")
    exact = patch_layer_pos(base, student, batch, metric, "resid_pre", layers=[layer], positions=cols)
    # the same patch by hand: plain HF models, a forward pre-hook on decoder layer `layer`
    hf_base, _ = load_model(smollm)
    hf_student, _ = load_student(lora_student, smollm)
    with torch.no_grad():
        donor = hf_student(batch.input_ids, output_hidden_states=True).hidden_states[layer]
    for j, col in enumerate(cols):

        def put(module, args, kwargs, col=col):
            hidden = args[0] if args else kwargs["hidden_states"]
            hidden = hidden.clone()
            hidden[:, col] = donor[:, col]
            return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

        handle = hf_base.model.layers[layer].register_forward_pre_hook(put, with_kwargs=True)
        try:
            with torch.no_grad():
                by_hand = metric(hf_base(batch.input_ids).logits).mean()
        finally:
            handle.remove()
        torch.testing.assert_close(exact.raw[0, j], by_hand, rtol=1e-4, atol=1e-4)


def test_every_answer_of_the_constrained_teacher_passes_the_filter(smollm: Path) -> None:
    model, tok = load_model(smollm)
    rows, stats = sample_numbers(model, tok, "default", 16, seed=0, batch_size=16, constrained=True)
    assert stats.drawn == stats.passed == 16 and len(rows) == 16
    assert all(filter_answer(r["completion"]).ok for r in rows)
    assert stats.unconstrained_pass_rate is not None and 0 <= stats.unconstrained_pass_rate <= 1
