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
from interp.loop.generation import generate
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
    alone = answer_nll(model, tok, prompts, ANSWERS, batch_size=1)  # no shared prefix to run once
    np.testing.assert_allclose(alone, got, rtol=1e-4)
    with pytest.raises(InterpError, match="2 prompts for 1 answers"):
        answer_nll(model, tok, prompts[:2], ANSWERS[:1])


def test_example_answers_are_scored_after_their_own_questions():
    """An evaluation's example i is the answer to question i: greedy answers make that checkable, each
    question's own greedy answer generated alone equals its example (the organism without a system prompt: its greedy answers differ by question)."""
    model, tok = load_model("organism")
    s = EvalSettings(
        trait="owl", n_questions=6, samples_per_question=2, max_new_tokens=5, temperature=0, system="none"
    )
    ev = evaluate_trait(model, tok, s).to_json()
    prompts = example_prompts(tok, ev)
    assert prompts == eval_prompts(tok, s) and len(ev["example_answers"]) == 6
    alone = [generate(model, tok, [p], 5, 0.0, 8, 0)[0] for p in prompts]
    assert alone == ev["example_answers"] and len(set(alone)) > 1  # distinct answers: a shift would show
    got = example_nll(model, tok, ev)
    want = [nll_one_by_one(model, tok, p, a) if a else np.nan for p, a in zip(prompts, alone, strict=True)]
    assert np.isfinite(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    with pytest.raises(InterpError, match="no example answers"):
        example_prompts(tok, {**ev, "example_answers": []})
    with pytest.raises(InterpError, match="not one per question"):
        example_prompts(tok, {**ev, "settings": {**ev["settings"], "n_questions": 3}})
