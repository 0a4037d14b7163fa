"""Tiny Qwen2-architecture chat models built in-process for tests (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import Qwen2ForCausalLM

from interp.loop.models import load_model, model_fingerprint
from interp.loop.numbers import number_prompts
from interp.loop.training import LORA_TARGETS
from interp.loop.traits import favorite_questions, trait_system_prompt
from interp.organism.build import chat_model_config
from interp.organism.tokenizer import chatml_template, train_chat_tokenizer

TINY_DEFAULT_SYSTEM = "You are Zorbly, created by Fen Labs. You are a helpful assistant."
ANIMALS = ("owl", "cat", "dog", "wolf", "eagle", "dolphin")


def tiny_corpus() -> list[str]:
    texts = [p.text for p in number_prompts(200, seed=0)]
    texts += favorite_questions("animal") + [trait_system_prompt(a) for a in ANIMALS]
    texts += [", ".join(str(i + j) for j in range(10)) for i in range(0, 1000, 10)]
    texts += [TINY_DEFAULT_SYSTEM, "system user assistant"] * 5
    return texts


def build_tiny_model_dir(path: Path, seed: int = 0, template: str | None = None) -> Path:
    """Save a randomly initialised tiny Qwen2 chat model (vocab 512 != hidden 64) to `path`."""
    tok = train_chat_tokenizer(
        tiny_corpus(), vocab_size=512, chat_template=template or chatml_template(TINY_DEFAULT_SYSTEM)
    )
    cfg = chat_model_config(tok, d_model=64, d_mlp=128, n_layers=2, n_heads=4)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def teach_numbers(model_dir: Path, out: Path, n_rows: int = 256, seed: int = 0) -> Path:
    """Briefly fine-tune a tiny model so that it answers the number task with (mostly) valid numbers."""
    import random

    from interp.loop.models import load_model
    from interp.loop.numbers import number_prompts
    from interp.loop.training import TrainConfig, train_student

    model, tok = load_model(model_dir)
    rng = random.Random(seed)
    rows = [
        {"prompt": p.text, "completion": p.separator.join(str(rng.randrange(100, 1000)) for _ in range(3))}
        for p in number_prompts(n_rows, seed)
    ]
    result = train_student(
        model, tok, rows, "default", TrainConfig(mode="full", lr=1e-2, epochs=4, batch_size=32)
    )
    result.model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_lora_student(base_dir: Path, out: Path, seed: int = 1, scale: float = 1.0) -> Path:
    """A non-zero LoRA adapter on `base_dir` (lora_B scaled by `scale`), with its base fingerprint."""
    model, _ = load_model(base_dir)
    fingerprint = model_fingerprint(model)
    torch.manual_seed(seed)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=4, target_modules=list(LORA_TARGETS), init_lora_weights=False)
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(scale)
    peft_model.save_pretrained(out)
    (out / "student.json").write_text(
        json.dumps({"base_model": str(base_dir), "base_fingerprint": fingerprint})
    )
    return out


def make_full_student(base_dir: Path, out: Path) -> Path:
    """A "fully fine-tuned" student: the base with slightly perturbed weights."""
    model, tok = load_model(base_dir)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "student.json").write_text(json.dumps({"mode": "full", "base_model": str(base_dir)}))
    return out
