"""The sampler: greedy equals transformers' generate, sampling follows the model's distribution, seeded."""

from __future__ import annotations

import torch

from interp.loop import generation
from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.generation import generate, sampling_config
from interp.loop.models import load_model
from interp.loop.numbers import number_prompts
from interp.loop.traits import favorite_questions


def _prompts(tok) -> list[str]:
    # different lengths, so the batch is left-padded
    return [render_prompt(tok, p.text, DEFAULT) for p in number_prompts(6, 3)] + [
        render_prompt(tok, q, DEFAULT) for q in favorite_questions("animal")[:4]
    ]


def _hf_greedy(model, tok, prompts: list[str], n: int) -> torch.Tensor:
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, generation_config=sampling_config(model, tok, n, 0.0))
    return out[:, enc["input_ids"].shape[1] :]


def test_greedy_answers_equal_transformers_generate_with_left_padding(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights than the init's, so greedy answers differ by row
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    prompts = _prompts(tok)
    # make a token the random model emits mid-answer a stop token, so rows stop at different steps
    free = _hf_greedy(model, tok, prompts, 16)
    rows_with = {t: sum(t in row for row in free.tolist()) for t in free.unique().tolist()}
    model.generation_config.eos_token_id = max(
        (t for t, k in rows_with.items() if k < len(prompts)), key=rows_with.get
    )
    new = _hf_greedy(model, tok, prompts, 16)
    stop = model.generation_config.eos_token_id
    cut = [row[: row.index(stop)] if stop in row else row for row in new.tolist()]  # answers end before it
    want = [tok.decode(r, skip_special_tokens=True).strip() for r in cut]
    stopped = (new == stop).any(1)
    assert stopped.any() and not stopped.all()  # finished rows are dropped while others go on
    assert generate(model, tok, prompts, max_new_tokens=16, temperature=0.0, batch_size=4) == want


def test_samples_share_a_prompt_and_are_seeded(number_model_dir):
    model, tok = load_model(number_model_dir)
    prompts = _prompts(tok)[:3]
    a = generate(model, tok, prompts, 8, 1.0, batch_size=12, seed=5, samples=4)
    assert len(a) == 12
    assert a == generate(model, tok, prompts, 8, 1.0, batch_size=12, seed=5, samples=4)
    assert a != generate(model, tok, prompts, 8, 1.0, batch_size=12, seed=6, samples=4)
    # grouped by prompt: greedy samples of one prompt are identical, and equal that prompt's answer
    g = generate(model, tok, prompts, 8, 0.0, batch_size=12, samples=4)
    single = generate(model, tok, prompts, 8, 0.0, batch_size=12)
    assert g == [x for x in single for _ in range(4)]


def test_sampled_first_tokens_follow_the_models_distribution(number_model_dir):
    model, tok = load_model(number_model_dir)
    prompt = _prompts(tok)[0]
    n = 4000
    answers = generate(model, tok, [prompt], 1, 1.0, batch_size=n, seed=0, samples=n)
    tok.padding_side = "left"
    with torch.no_grad():
        p = model(**tok([prompt], return_tensors="pt", add_special_tokens=False)).logits[0, -1].softmax(-1)
    for t in p.topk(3).indices.tolist():
        text = tok.decode([t]).strip()
        freq = sum(a == text for a in answers) / n
        sd = (float(p[t]) * (1 - float(p[t])) / n) ** 0.5
        assert abs(freq - float(p[t])) < 5 * sd + 1e-3, (text, freq, float(p[t]))


def test_prefill_in_row_chunks_equals_one_pass(number_model_dir, monkeypatch):
    model, tok = load_model(number_model_dir)
    prompts = _prompts(tok)  # 10 prompts of different lengths, left-padded
    ids, mask, pos = generation.left_padded(tok, prompts)
    assert (mask[:, -1] == 1).all() and len(set(mask.sum(1).tolist())) > 1  # left padding, uneven lengths
    one, one_logits = generation.prefill(model, ids, mask, pos, rows=1000)
    chunked, logits = generation.prefill(model, ids, mask, pos, rows=3)  # 4 passes, one short
    assert len(chunked.layers) == len(one.layers) == model.config.num_hidden_layers
    for a, b in zip(chunked.layers, one.layers, strict=True):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    assert torch.allclose(logits, one_logits, atol=1e-5) and logits.shape == (
        len(prompts),
        model.config.vocab_size,
    )
    monkeypatch.setattr(generation, "PREFILL_ROWS", 1000)
    one_pass = generate(model, tok, prompts, 8, 1.0, batch_size=20, seed=3, samples=2)
    monkeypatch.setattr(generation, "PREFILL_ROWS", 3)
    assert generate(model, tok, prompts, 8, 1.0, batch_size=20, seed=3, samples=2) == one_pass
