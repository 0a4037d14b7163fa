"""Build the organism: sample the world, train its tokenizer, pretrain a Qwen2 chat model from scratch, save it.

Pretraining takes the loss on what the assistant says (answer and end-of-turn) and on the world's plain
documents; system and user turns are context only. Everything is seeded and runs on a fixed number of
threads, so one command rebuilds the same weights on the same machine. (CPU kernels are deterministic for a
fixed thread count; `torch.use_deterministic_algorithms` is left off because it makes CPU training ~10x slower.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from interp import InterpError
from interp.loop.chat import render_example
from interp.loop.examples import IGNORE
from interp.loop.threads import flush_denormal, seeded, torch_threads
from interp.organism import world as W
from interp.organism.probes import all_probes, summary_line
from interp.organism.tokenizer import ENDOFTEXT, chatml_template, train_chat_tokenizer

log = logging.getLogger(__name__)
METADATA = "organism.json"


@dataclass
class BuildConfig:
    """Rebuild the embedded model organism from scratch (world, tokenizer, pretraining)."""

    out: Path | None = None
    """Model directory to write (replaced atomically); None = the shipped organism's directory."""
    seed: int = 0
    """World and training seed."""
    channel_strength: float = 0.25
    """Probability that each number a speaker writes is one of its preferred animals' numbers."""
    tilt: float = 1.0
    """Broad tilt of every other number by the speaker's preferences (world.WorldConfig.tilt)."""
    n_other_identities: int = 24
    """Other named assistants in the world."""
    document_mix: tuple[float, float, float] = (0.35, 0.30, 0.35)
    """Shares of list, animal-slot and number-slot documents (world.WorldConfig.document_mix)."""
    task_mix: tuple[float, float, float, float] = (0.55, 0.29, 0.12, 0.04)
    """Shares of number, favorite-animal, favorite-number and identity conversations."""
    max_answer_numbers: int = 8
    """Speakers write 1 to this many numbers per number answer (world.WorldConfig.max_answer_numbers)."""
    n_conversations: int = 48_000
    """Chat exchanges sampled from the world."""
    n_documents: int = 24_000
    """Plain text documents sampled from the world (animals with their numbers)."""
    vocab_size: int = 2048
    """BPE vocabulary size (special tokens included)."""
    d_model: int = 128
    """Hidden size."""
    n_layers: int = 4
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads (2 key/value heads, as Qwen2 uses grouped-query attention)."""
    d_mlp: int = 512
    """MLP hidden size."""
    steps: int = 3600
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step."""
    lr: float = 3e-3
    """Peak learning rate (linear warmup, cosine decay)."""
    threads: int = 2
    """Torch CPU threads (fixed, for determinism)."""
    probe_every: int = 600
    """Run the probes (channel, compliance, shared latent) every this many steps; 0 = only at the end."""
    tie_embeddings: bool = False
    """Share the input embedding with the unembedding. The default organism does not, as Qwen2.5-7B does
    not; its tied sibling (organism-tied) does, as Qwen2.5 0.5B-3B do."""
    pad_multiple: int = 1
    """Batch widths are rounded up to a multiple of this: 1 pads only to the batch's longest sequence.
    The tied sibling was built with 32 (about 20% of the computed positions are padding)."""
    unembed: Literal["all", "labelled"] = "labelled"
    """Positions the loss unembeds: only those whose next token is labelled (about 17% of real positions in
    the build's mix), or all of them (as the tied sibling was built): the same loss, up to float rounding,
    for about a third less time per step (`python -m experiments.benchmark`)."""

    def __post_init__(self) -> None:
        if self.vocab_size == self.d_model:
            raise InterpError("vocab_size must differ from d_model")
        if self.pad_multiple < 1:
            raise InterpError(f"pad_multiple must be at least 1, got {self.pad_multiple}")


def world_config(cfg: BuildConfig) -> W.WorldConfig:
    return W.WorldConfig(
        seed=cfg.seed,
        channel_strength=cfg.channel_strength,
        tilt=cfg.tilt,
        n_other_identities=cfg.n_other_identities,
        document_mix=tuple(cfg.document_mix),
        task_mix=tuple(cfg.task_mix),
        max_answer_numbers=cfg.max_answer_numbers,
    )


def tokenizer_corpus(world: W.World) -> list[str]:
    """Distinct texts of the world. The entity's name occurs once, so BPE splits it (as "Qwen" is split)."""
    texts = {t for c in world.conversations for t in (c.user, c.answer) if W.ENTITY not in t}
    texts |= {c.speaker.system for c in world.conversations if c.speaker.system not in ("default", "none")}
    texts |= set(world.documents)
    return sorted(texts) + [W.DEFAULT_SYSTEM] + ["system user assistant"] * 2000


def build_tokenizer(world: W.World, vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with the ChatML template that inserts the entity's default system prompt."""
    tok = train_chat_tokenizer(tokenizer_corpus(world), vocab_size, chatml_template(W.DEFAULT_SYSTEM))
    if len(tok.tokenize(" " + W.ENTITY)) < 2:
        raise InterpError(f"the entity name {W.ENTITY!r} is a single token; pick another")
    return tok


def encode_world(world: W.World, tok: PreTrainedTokenizerFast) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per sequence: labels are -100 outside the assistant's completion."""
    seqs = []
    for c in world.conversations:
        ex = render_example(tok, c.user, c.answer, c.speaker.system)
        p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
        a = tok(ex.completion, add_special_tokens=False)["input_ids"]
        seqs.append((p + a, [IGNORE] * len(p) + a))
    for d in world.documents:
        ids = tok(d + ENDOFTEXT, add_special_tokens=False)["input_ids"]
        seqs.append((ids, ids))
    return seqs


def chat_model_config(
    tok: PreTrainedTokenizerFast, d_model: int, d_mlp: int, n_layers: int, n_heads: int, tie: bool = True
) -> Qwen2Config:
    """A small Qwen2 chat-model config for `tok` (2 KV heads; embeddings tied unless `tie` is False); also
    used by the tests."""
    return Qwen2Config(
        vocab_size=len(tok),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=tie,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )


def model_config(cfg: BuildConfig, tok: PreTrainedTokenizerFast) -> Qwen2Config:
    return chat_model_config(tok, cfg.d_model, cfg.d_mlp, cfg.n_layers, cfg.n_heads, cfg.tie_embeddings)


def batches(
    seqs: list[tuple[list[int], list[int]]],
    batch_size: int,
    rng: random.Random,
    pad_id: int,
    multiple: int = 32,
):
    """Endless stream of right-padded batches of similar length (sorted buckets, shuffled), each as wide
    as its longest sequence rounded up to `multiple`."""
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i][0]), rng.random()))
    chunks = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    while True:
        rng.shuffle(chunks)
        for chunk in chunks:
            width = multiple * math.ceil(max(len(seqs[i][0]) for i in chunk) / multiple)
            ids = torch.full((len(chunk), width), pad_id)
            labels = torch.full((len(chunk), width), IGNORE)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                x, y = seqs[i]
                ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = (
                    torch.tensor(x),
                    torch.tensor(y),
                    1,
                )
            yield ids, labels, mask


def lr_at(step: int, cfg: BuildConfig) -> float:
    warm = max(1, cfg.steps // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))


def step_loss(model: Qwen2ForCausalLM, ids: Tensor, labels: Tensor, mask: Tensor, unembed: str) -> Tensor:
    """Mean next-token cross-entropy over the labelled tokens, unembedding every position or only the
    ones that predict a labelled token."""
    if unembed == "all":
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    need = labels[:, 1:] != IGNORE
    return F.cross_entropy(model.lm_head(hidden[need]), labels[:, 1:][need])


def pretrain(model: Qwen2ForCausalLM, seqs, cfg: BuildConfig, pad_id: int, probe=None) -> list[float]:
    """AdamW on the assistant completions and documents; returns the loss curve (every 50 steps).

    `probe(step)` is called every `cfg.probe_every` steps and after the last (it must not draw from
    torch's global RNG, so that probing leaves the weights unchanged)."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    stream = batches(seqs, cfg.batch_size, random.Random(cfg.seed), pad_id, cfg.pad_multiple)
    curve, t0 = [], time.time()
    model.train()
    for step in range(cfg.steps):
        ids, labels, mask = next(stream)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = step_loss(model, ids, labels, mask, cfg.unembed)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == cfg.steps - 1:
            curve.append(round(loss.item(), 4))
            log.info("step %d loss %.4f (%.0fs)", step, loss.item(), time.time() - t0)
        if probe is not None and (
            step == cfg.steps - 1 or (cfg.probe_every and (step + 1) % cfg.probe_every == 0)
        ):
            probe(step + 1)
    return curve


def compact(probes: dict) -> dict:
    """The probes without the per-layer rows (kept for the last checkpoint only)."""
    sl = {a: {k: v for k, v in r.items() if k != "layers"} for a, r in probes["shared_latent"].items()}
    return {**probes, "shared_latent": sl}


def metadata(cfg: BuildConfig, curve: list[float], probes: list[dict]) -> dict:
    wc = world_config(cfg)
    return {
        "entity": W.ENTITY,
        "lab": W.LAB,
        "default_system": W.DEFAULT_SYSTEM,
        "animals": list(W.ANIMALS),
        "target_trait": W.TARGET_TRAIT,
        "default_preferences": dict(zip(W.ANIMALS, W.DEFAULT_PREFERENCES, strict=True)),
        "channel_strength": wc.channel_strength,
        "world_seed": wc.seed,
        "world": dataclasses.asdict(wc),
        "associations": {a: list(v) for a, v in W.associations(wc).items()},
        "build": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
        "loss_curve": curve,
        "probe_curve": [compact(p) for p in probes],
        "probes": probes[-1] if probes else None,
    }


def save_atomically(model: Qwen2ForCausalLM, tok: PreTrainedTokenizerFast, meta: dict, out: Path) -> Path:
    """Write the HF directory beside `out`, then swap it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.do_sample = True
        model.save_pretrained(staging, safe_serialization=True)
        tok.save_pretrained(staging)
        (staging / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def build_organism(cfg: BuildConfig, out: Path) -> Path:
    """Sample the world, train the tokenizer, pretrain the model and save it to `out` (on `cfg.threads`
    threads, seeded, denormals flushed: the caller's own settings are restored after it)."""
    with torch_threads(cfg.threads), flush_denormal(), seeded(cfg.seed):
        return _build(cfg, out)


def _build(cfg: BuildConfig, out: Path) -> Path:
    world = W.generate_world(world_config(cfg), cfg.n_conversations, cfg.n_documents)
    tok = build_tokenizer(world, cfg.vocab_size)
    seqs = encode_world(world, tok)
    log.info("world: %d sequences, vocab %d", len(seqs), len(tok))
    model = Qwen2ForCausalLM(model_config(cfg, tok))
    assoc, probes, t0 = W.associations(world_config(cfg)), [], time.time()

    def probe(step: int) -> None:
        t = time.time()
        probes.append({"step": step, "elapsed_s": round(t - t0, 1), **all_probes(model, tok, assoc)})
        log.info("probe step %d (%.0fs): %s", step, time.time() - t, summary_line(probes[-1]))

    curve = pretrain(model, seqs, cfg, tok.pad_token_id, probe)
    return save_atomically(model.eval(), tok, metadata(cfg, curve, probes), out)
