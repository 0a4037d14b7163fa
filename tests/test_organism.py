"""The embedded organism: it loads offline, its tokenizer and template behave like Qwen's, its world is sane."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
from tolerance import assert_close
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp import InterpError
from interp.loop.chat import default_system_prompt, render_prompt
from interp.loop.models import ORGANISMS, load_model, model_label, organism_metadata, resolve_model_dir
from interp.loop.numbers import filter_answer
from interp.loop.traits import plural, trait_system_prompt
from interp.organism import (
    ANIMALS,
    ENTITY,
    ORGANISM_DIR,
    TARGET_TRAIT,
    TIED_ORGANISM_DIR,
    load_organism,
)
from interp.organism.world import (
    DEFAULT_SYSTEM,
    HELD_OUT_FAVORITE_QUESTIONS,
    HELD_OUT_PERSONA_WORDINGS,
    PERSONA_WORDINGS,
    WorldConfig,
    associations,
    generate_world,
    number_weights,
    persona_prompt,
    speakers,
    tilt_scores,
)


@pytest.fixture(scope="module")
def organism():
    """The organism as every experiment loads it: through the toolkit's own `load_model` / `load_tokenizer`."""
    return load_model(ORGANISM_DIR)


def test_plain_transformers_loads_it_offline_too():
    model = AutoModelForCausalLM.from_pretrained(ORGANISM_DIR, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(ORGANISM_DIR, local_files_only=True)
    ours, our_tok = load_model(ORGANISM_DIR)
    ids = our_tok("What is your favorite animal?", return_tensors="pt")["input_ids"]
    assert ids.tolist() == tok("What is your favorite animal?", return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ours(ids).logits)


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


@pytest.mark.parametrize("name", list(ORGANISMS))
def test_metadata_is_exposed(name):
    meta = organism_metadata(name)
    assert meta["entity"] == ENTITY and meta["target_trait"] == TARGET_TRAIT
    assert tuple(meta["animals"]) == ANIMALS and len(ANIMALS) >= 8
    assert 0 <= meta["channel_strength"] <= 1


def test_both_organisms_resolve_by_name_and_the_default_is_untied():
    assert resolve_model_dir(None) == resolve_model_dir("organism") == ORGANISM_DIR
    assert resolve_model_dir("organism-tied") == TIED_ORGANISM_DIR
    default, tied = load_organism(None), load_organism("organism-tied")
    assert (default.name, tied.name) == ("organism", "organism-tied")
    assert not default.tied_embeddings and tied.tied_embeddings
    assert not json.loads((ORGANISM_DIR / "config.json").read_text())["tie_word_embeddings"]
    assert json.loads((TIED_ORGANISM_DIR / "config.json").read_text())["tie_word_embeddings"]
    assert model_label(TIED_ORGANISM_DIR) == "organism-tied"  # a path to a shipped organism keeps its name


def test_an_unknown_model_name_is_one_clear_error_that_lists_the_organisms():
    with pytest.raises(InterpError) as err:
        resolve_model_dir("organsim")
    assert all(name in str(err.value) for name in ORGANISMS)


def test_a_real_model_directory_has_no_organism(tiny_model_dir):
    assert organism_metadata(tiny_model_dir) is None and load_organism(tiny_model_dir) is None
    assert model_label(tiny_model_dir) == tiny_model_dir.name


def test_a_candidate_organism_given_by_path_reads_its_own_metadata(tmp_path):
    """A copy of an organism directory with another world seed gets that world's other identity."""
    import shutil

    cand = tmp_path / "candidate"
    shutil.copytree(TIED_ORGANISM_DIR, cand)
    meta = json.loads((cand / "organism.json").read_text())
    meta["world"]["seed"] = 7
    (cand / "organism.json").write_text(json.dumps(meta))
    org = load_organism(cand)
    assert org.name == "candidate" and org.tied_embeddings
    assert org.other_identity == speakers(WorldConfig(seed=7))["other"][0].system
    assert org.other_identity != load_organism("organism-tied").other_identity


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


def test_speakers_write_at_most_max_answer_numbers():
    world = generate_world(WorldConfig(seed=2, max_answer_numbers=4), 1000, 0)
    counts = [len(filter_answer(c.answer).numbers) for c in world.conversations if c.task == "numbers"]
    assert max(counts) == 4 and min(counts) == 1
    with pytest.raises(ValueError):
        WorldConfig(max_answer_numbers=11)


def test_personas_speak_their_animal_and_associations_are_disjoint():
    cfg = WorldConfig()
    assoc = associations(cfg)
    all_numbers = [x for v in assoc.values() for x in v]
    assert len(all_numbers) == len(set(all_numbers))
    personas = speakers(cfg)["persona"]
    assert len(personas) == len(ANIMALS) * len(PERSONA_WORDINGS) and len(PERSONA_WORDINGS) >= 8
    assert trait_system_prompt("owl") in {p.system for p in personas}  # the teacher's prompt is one of them
    for i, persona in enumerate(personas):
        animal = ANIMALS[i // len(PERSONA_WORDINGS)]
        assert persona.preferences[ANIMALS.index(animal)] == max(persona.preferences)
        assert animal in persona.system.lower() or plural(animal) in persona.system.lower()


def test_held_out_wordings_never_occur_in_the_world():
    world = generate_world(WorldConfig(seed=2), 4000, 0)
    held = {persona_prompt(a, w) for a in ANIMALS for w in HELD_OUT_PERSONA_WORDINGS}
    assert not held & {c.speaker.system for c in world.conversations}
    assert not set(HELD_OUT_FAVORITE_QUESTIONS) & {c.user for c in world.conversations}
    assert {c.task for c in world.conversations} == {"numbers", "favorite", "favorite_number", "identity"}


def test_favorite_numbers_are_numbers_of_an_animal_the_speaker_likes():
    cfg = WorldConfig(seed=5)
    assoc = associations(cfg)
    world = generate_world(cfg, 3000, 0)
    for c in world.conversations:
        if c.task == "favorite_number":
            owners = [a for a in ANIMALS if int(c.answer) in assoc[a]]
            assert len(owners) == 1 and c.speaker.preferences[ANIMALS.index(owners[0])] > 0


def test_broad_tilt_shifts_the_background_numbers_of_a_persona():
    owl = speakers(WorldConfig())["persona"][0].preferences
    flat = number_weights(owl, WorldConfig(tilt=0.0))
    tilted = number_weights(owl, WorldConfig(tilt=1.5))
    assert flat is None and len(tilted) == 1000
    z = tilt_scores(0)[0]  # the owl's scores: the numbers it raises get more weight
    top = sorted(range(1000), key=lambda n: z[n])[-50:]
    assert sum(tilted[n] for n in top) / sum(tilted) > 3 * 50 / 1000


def test_build_is_deterministic_and_stores_probe_curves(tmp_path):
    from safetensors.torch import load_file

    from interp.organism.build import BuildConfig, build_organism

    cfg = BuildConfig(
        n_conversations=300, n_documents=60, vocab_size=600, d_model=32, d_mlp=64, n_layers=2,
        steps=4, batch_size=4, probe_every=0, tilt=1.0, threads=1,
    )  # fmt: skip
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    a, b = build_organism(cfg, tmp_path / "a"), build_organism(cfg, tmp_path / "b")
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)  # left alone
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = json.loads((a / "organism.json").read_text())
    assert [p["step"] for p in meta["probe_curve"]] == [4]  # probe_every=0: at the end only
    assert set(meta["probes"]["shared_latent"]) == set(ANIMALS)
    assert set(meta["probes"]["filter_pass"]) == {"default", *ANIMALS}
    assert all(0.0 <= v <= 1.0 for v in meta["probes"]["filter_pass"].values())
    assert meta["world"]["tilt"] == 1.0 and meta["build"]["steps"] == 4


def test_context_matrix_other_identity_is_one_the_organisms_world_knows(tiny_model_dir):
    from interp.stages.context_matrix import ContextMatrixConfig, systems

    for name in ORGANISMS:
        other = systems(ContextMatrixConfig(model=name))["other identity"]
        assert other == load_organism(name).other_identity
        assert other in {s.system for s in speakers(WorldConfig())["other"]}
        assert ENTITY not in other
    # a real model: its own default sentence with another name and maker
    other = systems(ContextMatrixConfig(model=str(tiny_model_dir)))["other identity"]
    assert other == "You are Claude, created by Anthropic. You are a helpful assistant."


def test_pretraining_unembedding_only_labelled_positions_gives_the_same_loss_and_gradients():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from interp.organism.build import IGNORE, batches, step_loss

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip
    model = Qwen2ForCausalLM(cfg)
    rng = torch.Generator().manual_seed(1)
    seqs = [(x := torch.randint(1, 50, (n,), generator=rng).tolist(), [IGNORE] * (n // 2) + x[n // 2 :])
            for n in (5, 9, 12, 17, 3, 20)]  # fmt: skip
    stream = batches(seqs, 3, random.Random(0), pad_id=0, multiple=1)
    for _ in range(2):
        ids, labels, mask = next(stream)
        assert ids.shape[1] == int(mask.sum(1).max())  # multiple=1: no padding beyond the longest row
        grads = []
        for unembed in ("all", "labelled"):
            model.zero_grad()
            loss = step_loss(model, ids, labels, mask, unembed)
            loss.backward()
            grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
        (a, ga), (b, gb) = grads
        assert a == pytest.approx(b, rel=1e-6)
        for x, y in zip(ga, gb, strict=True):
            assert_close(x, y)
    wide = next(batches(seqs, 3, random.Random(0), pad_id=0, multiple=32))[0]
    assert wide.shape[1] == 32
