"""A training batch's forward pass: only the logits the loss reads, and the prefix every row shares run once.

Every training row renders the same system prompt and chat-template tokens first (about a third of a number
prompt's tokens under the default system prompt). `completion_logits` runs that prefix as one row, keeps its
keys and values with their gradients, and lets the rest of each row attend to them: the whole batch's logits
and gradients up to float rounding (tests/test_training.py checks both, for LoRA and full FT).
"""

from __future__ import annotations

from jaxtyping import Int
from torch import Tensor

from interp.loop.examples import IGNORE
from interp.loop.generation import CACHE_KEY


def logits_needed(labels: Int[Tensor, "batch pos"]) -> int:
    """How many trailing positions' logits the loss reads: from the one that predicts the batch's first
    labelled token to the end (the prompt before it is never unembedded)."""
    labelled = (labels != IGNORE).any(0).nonzero()
    return labels.shape[1] - max(0, int(labelled[0]) - 1) if labelled.numel() else 1


MIN_SHARED_PREFIX = 8
"""Shortest shared prefix worth a separate forward pass (below it, the batch runs whole)."""


def shared_prefix(batch: dict[str, Tensor], keep: int) -> int:
    """How many leading positions every row of a right-padded batch shares (same tokens, none padding),
    capped so that the `keep` trailing positions whose logits the loss reads all lie after it."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    same = ((ids == ids[:1]) & (mask == 1)).all(0).long()
    return min(int(same.cumprod(0).sum()), ids.shape[1] - keep)


def completion_logits(
    model, batch: dict[str, Tensor], device, share_prefix: bool = True
) -> tuple[Tensor, Tensor]:
    """Logits at the positions the loss reads, and the labels aligned with them; with `share_prefix`, the
    batch's shared prefix runs once (turn it off under gradient checkpointing, which drops the cache)."""
    keep = logits_needed(batch["labels"])
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    labels = batch["labels"][:, -keep:].to(device)
    shared = shared_prefix(batch, keep) if share_prefix and ids.shape[0] > 1 else 0
    if shared < MIN_SHARED_PREFIX:
        return model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits, labels
    cache = getattr(model(input_ids=ids[:1, :shared], use_cache=True), CACHE_KEY)
    cache.batch_repeat_interleave(ids.shape[0])  # differentiable: the prefix's gradient sums over rows
    out = model(
        input_ids=ids[:, shared:],
        attention_mask=mask,
        **{CACHE_KEY: cache},
        use_cache=True,
        logits_to_keep=keep,
    )
    return out.logits, labels
