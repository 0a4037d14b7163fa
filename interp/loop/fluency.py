"""Fluency of a student's sampled answers: how likely a reference model (the base) finds them, per token.

A student that ends training with a good fit to its teacher can still have lost the base's way of writing,
and a trait lift it shows may then be bought with a damaged model. The measure here reads the answers
themselves: the base's mean negative log-likelihood per answer token, teacher-forced after the exact prompt
the answer was sampled under. Compared with the same quantity for a reference's answers to the same questions
(the base's own, or control students'; paired per question), it is the student's **excess NLL**, in nats per
token: 0 when the base finds the student's answers as likely as the reference's, 1 when its tokens are e
times less likely (geometric mean over tokens).

What an evaluation records are its example answers: the first sample of each of its first questions (see
`interp.loop.evaluation.mention_rates`), so example i answers question i. `example_nll` scores those, so
every recorded student can be measured without its weights. What is scored is the recorded *text*
(special tokens dropped, whitespace stripped), tokenised again, without the end-of-turn token (an answer
cut at the evaluation's token limit has none): the sampled token ids are not recorded, so an answer sampled
in a non-canonical split (o + wl for owl) is scored as its canonical tokens, and one cut inside a character
is scored with the replacement character. Student and reference answers are treated alike.

    model, tok = load_model("smollm2-135m")
    nll = example_nll(model, tok, student_result["evals"]["default"])   # (question,) nats per token
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.loop.examples import IGNORE, Encoded, collate
from interp.loop.forward import completion_logits
from interp.loop.traits import favorite_questions


def encode_answer(tok: PreTrainedTokenizerBase, prompt: str, answer: str) -> Encoded:
    """The rendered prompt then the answer's tokens; only the answer's are labelled (no end-of-turn)."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    return Encoded(input_ids=p + a, labels=[IGNORE] * len(p) + a)


@torch.no_grad()
def answer_nll(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    batch_size: int = 32,
) -> np.ndarray:
    """Per (rendered prompt, answer) pair: the model's mean negative log-likelihood per answer token, in
    nats, teacher-forced; NaN for an empty answer (nothing to score)."""
    if len(prompts) != len(answers):
        raise InterpError(f"answer_nll: {len(prompts)} prompts for {len(answers)} answers")
    out = []
    for i in range(0, len(prompts), batch_size):
        pairs = zip(prompts[i : i + batch_size], answers[i : i + batch_size], strict=True)
        chunk = [encode_answer(tok, p, a) for p, a in pairs]
        logits, labels = completion_logits(model, collate(chunk, tok.pad_token_id or 0), model.device)
        logp = logits[:, :-1].float().log_softmax(-1)
        target = labels[:, 1:]
        scored = target != IGNORE
        token_nll = -logp.gather(-1, target.clamp_min(0)[..., None]).squeeze(-1) * scored
        n = scored.sum(1)
        out += (token_nll.sum(1) / n.clamp_min(1)).masked_fill(n == 0, float("nan")).cpu().tolist()
    return np.array(out, dtype=float)


def example_prompts(tok: PreTrainedTokenizerBase, evaluation: dict[str, Any]) -> list[str]:
    """The rendered prompts that a recorded evaluation's example answers answered (example i, question i)."""
    s = evaluation["settings"]
    n = len(evaluation.get("example_answers") or [])
    if n == 0:
        raise InterpError("this evaluation records no example answers (an evaluation without sampling?)")
    if n > s["n_questions"]:
        raise InterpError(f"{n} example answers for {s['n_questions']} questions: not one per question")
    return [
        render_prompt(tok, q, s["system"]) for q in favorite_questions(s["category"], s["n_questions"])[:n]
    ]


def example_nll(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, evaluation: dict[str, Any]
) -> np.ndarray:
    """The model's NLL per token of a recorded evaluation's example answers, one per question."""
    return answer_nll(model, tok, example_prompts(tok, evaluation), evaluation["example_answers"])
