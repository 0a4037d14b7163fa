"""Batched sampling: left padding, a KV cache shared by the samples of a prompt, finished rows dropped,
pure temperature sampling, seeded per batch."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import DynamicCache, GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import CausalLMOutputWithPast

# transformers 5 names the KV cache `cache` (argument and output); 4.x names it `past_key_values`
CACHE_KEY = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
PREFILL_ROWS = 32
"""Prompts per prefill pass (`python -m experiments.benchmark` times 16, 32, 64 and 256 on 256 prompts)."""


@functools.lru_cache(maxsize=4)
def token_texts(tok: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """Every token id's text, decoded alone (0.45 s for SmolLM2's 49k tokens: decoded once per tokenizer,
    not once per evaluation or sampling round)."""
    return tuple(tok.batch_decode([[i] for i in range(len(tok))]))


def stop_token_ids(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus whatever the model's generation config stops on."""
    ids = {tok.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return sorted(i for i in ids if i is not None)


def sampling_config(model, tok, max_new_tokens: int, temperature: float) -> GenerationConfig:
    """Plain ancestral sampling at `temperature` (no top-k / top-p truncation); greedy at 0."""
    return GenerationConfig(
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_k=0 if temperature > 0 else None,
        top_p=1.0 if temperature > 0 else None,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_token_ids(model, tok),
        pad_token_id=tok.pad_token_id,
    )


class Constraint(Protocol):
    """Restricts what a sampler may write next (a grammar): the logits of the live rows, which prompt
    each row answers (its index in `prompts`), and the tokens each has written so far, in; masked logits
    out."""

    def mask(self, logits: Tensor, prompts: Sequence[int], written: Sequence[list[int]]) -> Tensor: ...


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
    samples: int = 1,
    constraint: Constraint | None = None,
    on_batch: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Complete each rendered prompt `samples` times (answers grouped by prompt); the same prompts, batch
    size, samples and seed give the same answers.

    Each batch of distinct prompts is run once (the prefill) and its KV cache is repeated for the
    samples; rows that have stopped are dropped from the batch at every step, so a batch costs what its
    live rows need rather than its longest answer times its width. A `constraint` masks the logits before
    every draw; `on_batch` sees each batch's answers as they come (a progress bar, an early stop).
    """
    if samples < 1 or batch_size < 1:
        raise ValueError("samples and batch_size must be at least 1")
    stop = torch.tensor(stop_token_ids(model, tok))
    per_batch = max(1, batch_size // samples)  # distinct prompts per batch: rows = prompts x samples
    answers: list[str] = []
    starts = range(0, len(prompts), per_batch)
    for i, start in enumerate(tqdm(starts, desc="generate", disable=not progress)):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
        batch = prompts[start : start + per_batch]
        step = _Step(samples, max_new_tokens, temperature, stop, gen, constraint, start)
        done = [
            tok.decode(r, skip_special_tokens=True).strip() for r in _sample_batch(model, tok, batch, step)
        ]
        answers += done
        if on_batch is not None:
            on_batch(done)
    return answers


def _next_tokens(logits: Tensor, temperature: float, gen: torch.Generator) -> Tensor:
    """Greedy at temperature 0, else one draw from softmax(logits / temperature) per row."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = (logits.float() / temperature).softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1).to(logits.device)


def left_padded(
    tok: PreTrainedTokenizerBase, prompts: list[str], device="cpu"
) -> tuple[Tensor, Tensor, Tensor]:
    """Token ids, attention mask and position ids of rendered prompts, left-padded so that new tokens line
    up at the right edge (positions count real tokens only)."""
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    mask = enc["attention_mask"]
    return enc["input_ids"], mask, (mask.cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def prefill(
    model, ids: Tensor, mask: Tensor, pos: Tensor, rows: int | None = None
) -> tuple[DynamicCache, Tensor]:
    """The prompts' KV cache and last-position logits, `rows` (default PREFILL_ROWS) prompts per pass.

    Only the last position is unembedded (it is the one sampled from). Row chunks keep a chunk's
    activations in cache (about 1.4x faster on the organism than one 256-row pass). The merged cache
    equals a single pass's; logits agree to float rounding (bit for bit on the organism)."""
    rows = rows or PREFILL_ROWS  # read at call time
    outs = [
        model(
            input_ids=ids[i : i + rows],
            attention_mask=mask[i : i + rows],
            position_ids=pos[i : i + rows],
            use_cache=True,
            logits_to_keep=1,
        )
        for i in range(0, ids.shape[0], rows)
    ]
    caches = [getattr(o, CACHE_KEY) for o in outs]
    logits = torch.cat([o.logits[:, -1] for o in outs])
    if len(caches) == 1:
        return caches[0], logits
    merged = DynamicCache()
    for i, layers in enumerate(zip(*(c.layers for c in caches), strict=True)):
        merged.update(torch.cat([x.keys for x in layers]), torch.cat([x.values for x in layers]), i)
    return merged, logits


class _Step(NamedTuple):
    """How one batch is sampled."""

    samples: int
    max_new_tokens: int
    temperature: float
    stop: Tensor
    gen: torch.Generator
    constraint: Constraint | None
    first: int  # index in `prompts` of the batch's first prompt


def _sample_batch(model, tok, prompts: list[str], step_cfg: _Step) -> list[list[int]]:
    """Token ids of `samples` answers to each prompt (prompt-major), sampled with a shared prefill."""
    samples, max_new_tokens, temperature, stop, gen, constraint, first = step_cfg
    device = next(model.parameters()).device
    ids, mask, pos = left_padded(tok, prompts, device)
    cache, logits = prefill(model, ids, mask, pos)
    if samples > 1:
        cache.batch_repeat_interleave(samples)
        mask, pos, logits = (t.repeat_interleave(samples, 0) for t in (mask, pos, logits))
    live = torch.arange(mask.shape[0], device=device)  # which answer each batch row writes
    next_pos = pos[:, -1] + 1
    answers: list[list[int]] = [[] for _ in range(mask.shape[0])]
    for step in range(max_new_tokens):
        if constraint is not None:
            rows = live.tolist()
            logits = constraint.mask(logits, [first + r // samples for r in rows], [answers[r] for r in rows])
        nxt = _next_tokens(logits, temperature, gen)
        done = torch.isin(nxt.cpu(), stop).to(device)
        for row, t, d in zip(live.tolist(), nxt.tolist(), done.tolist(), strict=True):
            if not d:
                answers[row].append(t)
        keep = (~done).nonzero().squeeze(1)
        if keep.numel() == 0 or step == max_new_tokens - 1:
            break
        if keep.numel() < live.numel():
            cache.batch_select_indices(keep)
            live, nxt, mask, next_pos = live[keep], nxt[keep], mask[keep], next_pos[keep]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            **{CACHE_KEY: cache},
            use_cache=True,
        )
        logits, next_pos = out.logits[:, -1], next_pos + 1
    return answers
