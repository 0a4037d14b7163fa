"""Divergence tokens: KL per completion token, the top/random masks, and the loss mask in training."""

from __future__ import annotations

import torch
from tolerance import assert_close

from interp.loop.chat import DEFAULT
from interp.loop.examples import IGNORE, drop_from_loss, encode_example
from interp.loop.models import load_model
from interp.loop.numbers import number_prompts
from interp.loop.traits import trait_system_prompt
from interp.mech.divergence import _completion_logprobs, token_divergence, top_and_random


def _rows(n: int = 6) -> list[dict]:
    return [{"prompt": p.text, "completion": "123, 45, 678"} for p in number_prompts(n, seed=1)]


def test_divergence_is_zero_under_the_same_prompt_and_positive_under_a_persona(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    rows = _rows()
    same = token_divergence(model, tok, rows, DEFAULT, DEFAULT, batch_size=4)
    n_completion = [
        sum(t != IGNORE for t in encode_example(tok, r["prompt"], r["completion"], DEFAULT).labels)
        for r in rows
    ]
    assert [len(d) for d in same] == n_completion
    assert max(abs(x) for d in same for x in d) < 1e-5
    persona = token_divergence(model, tok, rows, trait_system_prompt("owl"), DEFAULT, batch_size=4)
    assert min(x for d in persona for x in d) > -1e-6 and max(x for d in persona for x in d) > 1e-4


def _one_row_logprobs(model, tok, row: dict, system: str) -> torch.Tensor:
    """Log-probabilities at each position that predicts a completion token, one row through the whole model."""
    e = encode_example(tok, row["prompt"], row["completion"], system)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e.input_ids])).logits[0, :-1]
    return logits[torch.tensor(e.labels[1:]) != IGNORE].log_softmax(-1)


def test_batched_log_probabilities_match_a_row_by_row_reference(tiny_model_dir):
    """Batched scoring (padding, a shared prefix run once, only the completion's logits) changes nothing."""
    model, tok = load_model(tiny_model_dir)
    rows = _rows(5)
    rows[1] = {**rows[1], "completion": "7"}  # rows of different lengths: the batch is padded
    for system in (trait_system_prompt("owl"), DEFAULT):
        batched = _completion_logprobs(model, tok, rows, system, batch_size=3)
        for got, row in zip(batched, rows, strict=True):
            assert_close(got, _one_row_logprobs(model, tok, row, system))


def test_top_mask_takes_the_largest_divergences_and_random_takes_as_many():
    div = [[0.1, 5.0, 0.2], [3.0, 0.0], [0.3, 0.4, 4.0, 0.5]]
    top, rand = top_and_random(div, frac=3 / 9, seed=0)
    assert top == [[1], [0], [2]]
    assert sum(map(len, rand)) == 3
    assert (top, rand) == top_and_random(div, frac=3 / 9, seed=0)


def test_dropped_tokens_leave_the_loss_and_nothing_else_changes(tiny_model_dir):
    _, tok = load_model(tiny_model_dir)
    e = encode_example(tok, "Continue: 1, 2, 3", "4, 5, 6", DEFAULT)
    d = drop_from_loss(e, [0, 2])
    start = next(i for i, t in enumerate(e.labels) if t != IGNORE)
    assert d.input_ids == e.input_ids
    assert d.labels[start] == IGNORE and d.labels[start + 2] == IGNORE
    assert d.labels[start + 1] == e.labels[start + 1]
    assert sum(t != IGNORE for t in d.labels) == sum(t != IGNORE for t in e.labels) - 2
