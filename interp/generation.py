"""Batched sampling: left padding, KV cache, pure temperature sampling, seeded per batch."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


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
) -> list[str]:
    """Complete each rendered prompt; same prompts, batch size and seed give the same answers."""
    tok.padding_side = "left"  # new tokens must line up at the right edge of the batch
    config = sampling_config(model, tok, max_new_tokens, temperature)
    device = next(model.parameters()).device
    answers: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for i, start in enumerate(tqdm(starts, desc="generate", disable=not progress)):
        enc = tok(
            prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        )
        enc = enc.to(device)
        torch.manual_seed(seed * 1_000_003 + i)
        out = model.generate(**enc, generation_config=config)
        new = out[:, enc["input_ids"].shape[1] :]  # (batch, new_pos)
        answers += tok.batch_decode(new, skip_special_tokens=True)
    return [a.strip() for a in answers]
