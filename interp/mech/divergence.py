"""Divergence tokens (Schrodi et al., arXiv 2509.23886): the answer tokens where the persona teacher and
the default model disagree most about what comes next.

For every completion token of a teacher's dataset: KL(teacher || default) between the next-token
distributions that predict it, the teacher being the model under the persona prompt and the default the
same model under the default prompt. Masking the top tokens out of a student's loss (against masking as
many random tokens) asks whether the trait travels through those few tokens.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp.loop.examples import IGNORE, collate, encode_example
from interp.loop.forward import completion_logits


@torch.no_grad()
def _completion_logprobs(model, tok, rows: list[dict], system: str, batch_size: int) -> list[Tensor]:
    """Per row: log-softmax of the next-token logits at each position that predicts a completion token (the
    batch's shared prefix run once, and only the positions from the first completion token's on unembedded)."""
    out = []
    for i in range(0, len(rows), batch_size):
        chunk = [encode_example(tok, r["prompt"], r["completion"], system) for r in rows[i : i + batch_size]]
        logits, labels = completion_logits(model, collate(chunk, tok.pad_token_id), model.device)
        logp = logits[:, :-1].float().log_softmax(-1)
        scored = labels[:, 1:] != IGNORE
        out += [logp[j, scored[j]] for j in range(len(chunk))]
    return out


def token_divergence(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    rows: list[dict],
    teacher_system: str,
    default_system: str,
    batch_size: int = 64,
) -> list[list[float]]:
    """Per row, per completion token: KL(teacher || default) in nats."""
    t = _completion_logprobs(model, tok, rows, teacher_system, batch_size)
    d = _completion_logprobs(model, tok, rows, default_system, batch_size)
    return [(a.exp() * (a - b)).sum(-1).tolist() for a, b in zip(t, d, strict=True)]


def top_and_random(
    divergence: list[list[float]], frac: float, seed: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Per row, the completion-token indices of the dataset's top `frac` by divergence, and of as many
    tokens drawn uniformly at random."""
    flat = [(v, r, i) for r, row in enumerate(divergence) for i, v in enumerate(row)]
    k = max(1, round(frac * len(flat)))
    top: list[list[int]] = [[] for _ in divergence]
    for _, r, i in sorted(flat, reverse=True)[:k]:
        top[r].append(i)
    rand: list[list[int]] = [[] for _ in divergence]
    for _, r, i in random.Random(seed).sample(flat, k):
        rand[r].append(i)
    return [sorted(x) for x in top], [sorted(x) for x in rand]
