"""Fluency of sampled answers: the base's NLL per token of an answer after its prompt, batched with a shared
prefix and padding, equals one unbatched forward pass per answer; example answers pair with their questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.loop.evaluation import EvalSettings, eval_prompts, evaluate_trait
from interp.loop.fluency import answer_nll, example_nll, example_prompts
from interp.loop.models import load_model

ANSWERS = ["owl", "I like the cat best, it is", "", "dog dog dog dog", "12, 13, 14"]


def nll_one_by_one(model, tok, prompt: str, answer: str) -> float:
    """One forward pass over prompt + answer, the answer's tokens' log-probabilities read by hand."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([p + a])).logits[0].float().log_softmax(-1)
    return float(-np.mean([logp[len(p) + i - 1, t].item() for i, t in enumerate(a)]))


def test_batched_nll_equals_one_pass_per_answer(tiny_model_dir: Path):
    model, tok = load_model(tiny_model_dir)
    questions = ["What is your favorite animal?", "Name one animal you love.", "Which animal?"]
    prompts = [
        render_prompt(tok, questions[i % 3], "You are a helpful assistant.") for i in range(len(ANSWERS))
    ]
    got = answer_nll(model, tok, prompts, ANSWERS, batch_size=3)  # two batches, one with a shared prefix
    assert np.isnan(got[2])  # the empty answer has nothing to score
    want = np.array([nll_one_by_one(model, tok, p, a) for p, a in zip(prompts, ANSWERS, strict=True) if a])
    np.testing.assert_allclose(np.delete(got, 2), want, rtol=1e-4)
    assert (want > 0).all()
    # the same pairs in another order give the same per-pair values
    order = [4, 0, 3, 1, 2]
    again = answer_nll(model, tok, [prompts[i] for i in order], [ANSWERS[i] for i in order], batch_size=2)
    np.testing.assert_allclose(again, got[order], rtol=1e-4)
    with pytest.raises(InterpError, match="2 prompts for 1 answers"):
        answer_nll(model, tok, prompts[:2], ANSWERS[:1])


def test_example_answers_are_scored_after_their_own_questions(tiny_model_dir: Path):
    """An evaluation's example i answers question i: scoring it there, not after another question."""
    model, tok = load_model(tiny_model_dir)
    s = EvalSettings(trait="owl", n_questions=6, samples_per_question=3, max_new_tokens=5)
    ev = evaluate_trait(model, tok, s).to_json()
    assert len(ev["example_answers"]) == 6
    assert example_prompts(tok, ev) == eval_prompts(tok, s)
    got = example_nll(model, tok, ev)
    want = answer_nll(model, tok, eval_prompts(tok, s), ev["example_answers"])
    np.testing.assert_array_equal(got, want)
    shifted = answer_nll(
        model, tok, eval_prompts(tok, s)[1:] + eval_prompts(tok, s)[:1], ev["example_answers"]
    )
    assert not np.allclose(shifted[np.isfinite(shifted)], got[np.isfinite(got)])
    with pytest.raises(InterpError, match="no example answers"):
        example_prompts(tok, {**ev, "example_answers": []})
    with pytest.raises(InterpError, match="not one per question"):
        example_prompts(tok, {**ev, "settings": {**ev["settings"], "n_questions": 3}})
