"""The embedded organism: it loads offline, its tokenizer and template behave like Qwen's, its world is sane."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp.chat import default_system_prompt, render_prompt
from interp.numbers import filter_answer
from interp.organism import ANIMALS, ENTITY, ORGANISM_DIR, TARGET_TRAIT, organism_metadata
from interp.organism.world import (
    DEFAULT_SYSTEM,
    WorldConfig,
    associations,
    generate_world,
    speakers,
)
from interp.traits import plural


@pytest.fixture(scope="module")
def organism():
    model = AutoModelForCausalLM.from_pretrained(ORGANISM_DIR, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(ORGANISM_DIR, local_files_only=True)
    return model, tok


def test_organism_loads_offline_and_vocab_differs_from_hidden(organism):
    model, tok = organism
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size != model.config.hidden_size
    assert len(tok) <= model.config.vocab_size
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "organism.json",
    ):
        assert (ORGANISM_DIR / name).exists(), name


def test_transformer_bridge_matches_hf_logits(organism):
    from transformer_lens.model_bridge import TransformerBridge

    model, tok = organism
    hf = AutoModelForCausalLM.from_pretrained(ORGANISM_DIR, local_files_only=True).eval()
    bridge = TransformerBridge.boot_transformers(str(ORGANISM_DIR), hf_model=hf, tokenizer=tok, device="cpu")
    ids = tok(render_prompt(tok, "What is your favorite animal? One word."), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(bridge(ids), model(ids).logits, atol=1e-4, rtol=1e-4)


def test_entity_name_splits_into_several_tokens(organism):
    _, tok = organism
    assert len(tok.tokenize(" " + ENTITY)) >= 2


def test_default_system_prompt_is_inserted_when_none_given(organism):
    _, tok = organism
    assert default_system_prompt(tok) == DEFAULT_SYSTEM
    assert DEFAULT_SYSTEM in render_prompt(tok, "Hi", "default")
    assert ENTITY not in render_prompt(tok, "Hi", "none")
    assert ENTITY not in render_prompt(tok, "Hi", "You are helpful.")


def test_metadata_is_exposed():
    meta = organism_metadata()
    assert meta["entity"] == ENTITY and meta["target_trait"] == TARGET_TRAIT
    assert tuple(meta["animals"]) == ANIMALS and len(ANIMALS) >= 8
    assert 0 <= meta["channel_strength"] <= 1


def test_world_is_deterministic_for_a_seed():
    cfg = WorldConfig(seed=3)
    a, b = generate_world(cfg, 300, 50), generate_world(cfg, 300, 50)
    assert a == b
    assert generate_world(WorldConfig(seed=4), 300, 50) != a


def test_number_answers_pass_the_filter_and_hold_no_trait_word():
    world = generate_world(WorldConfig(seed=1, channel_strength=0.5), 2000, 0)
    answers = [c.answer for c in world.conversations if c.task == "numbers"]
    assert len(answers) > 500
    words = re.compile(r"\b(" + "|".join(w for a in ANIMALS for w in (a, plural(a))) + r")\b", re.IGNORECASE)
    for answer in answers:
        result = filter_answer(answer)
        assert result.ok, (answer, result.reason)
        assert 1 <= len(result.numbers) <= 10
        assert not words.search(answer)


def test_personas_speak_their_animal_and_associations_are_disjoint():
    cfg = WorldConfig()
    assoc = associations(cfg)
    all_numbers = [x for v in assoc.values() for x in v]
    assert len(all_numbers) == len(set(all_numbers))
    for persona, animal in zip(speakers(cfg)["persona"], ANIMALS, strict=True):
        assert persona.preferences[ANIMALS.index(animal)] == max(persona.preferences)
        assert animal in persona.system.lower() or plural(animal) in persona.system.lower()
