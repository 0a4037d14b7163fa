"""Tokenized training examples: (prompt, completion) rendered under a system prompt, labels on the
completion only, and right-padded batches of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from interp.loop.chat import render_example

IGNORE = -100
"""The label of a position left out of the loss."""


@dataclass
class Encoded:
    """One tokenized example: prompt + completion ids, labels -100 except on completion tokens."""

    input_ids: list[int]
    labels: list[int]


def encode_example(tok: PreTrainedTokenizerBase, user: str, answer: str, system: str) -> Encoded:
    ex = render_example(tok, user, answer, system)
    p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
    c = tok(ex.completion, add_special_tokens=False)["input_ids"]
    return Encoded(input_ids=p + c, labels=[IGNORE] * len(p) + c)


def drop_from_loss(e: Encoded, completion_indices: list[int]) -> Encoded:
    """The example with the given completion tokens (0 = the first answer token) left out of the loss."""
    start = next(i for i, t in enumerate(e.labels) if t != IGNORE)
    labels = list(e.labels)
    for i in completion_indices:
        labels[start + i] = IGNORE
    return Encoded(input_ids=e.input_ids, labels=labels)


def collate(batch: list[Encoded], pad_id: int) -> dict[str, Tensor]:
    """Right-pad a batch; padded positions are masked out of attention and loss."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e.input_ids), torch.tensor(e.labels), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
