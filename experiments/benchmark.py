"""Speed benchmarks, measured side by side in one run (never as timed tests).

    python -m experiments.benchmark                 # on the embedded organism
    python -m experiments.benchmark --model PATH    # on any local chat model

Prints: batched generation vs a one-sample-at-a-time loop (answers/s and the ratio), student
training tokens/s (LoRA and full fine-tuning), and the batched activation-patching sweep vs
TransformerLens's per-cell `get_act_patch_resid_pre`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.chat import render_prompt
from interp.config import parse_config
from interp.generation import generate
from interp.models import load_model, resolve_model_dir
from interp.numbers import number_prompts
from interp.training import TrainConfig, train_student


@dataclass
class BenchmarkConfig:
    """Time the loop's hot paths on one model."""

    model: str | None = None
    """Local model directory (default: the embedded organism)."""
    n_prompts: int = 256
    """Number-task prompts answered by both generation strategies."""
    max_new_tokens: int = 32
    """Tokens generated per answer."""
    train_rows: int = 256
    """Rows per training-throughput measurement."""
    patching: bool = True
    """Also run the activation-patching benchmark."""


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_generation(model, tok, cfg: BenchmarkConfig) -> list[str]:
    prompts = [render_prompt(tok, p.text) for p in number_prompts(cfg.n_prompts, seed=0)]
    _, t_batched = timed(lambda: generate(model, tok, prompts, cfg.max_new_tokens, batch_size=len(prompts)))
    _, t_single = timed(
        lambda: [generate(model, tok, [p], cfg.max_new_tokens, batch_size=1) for p in prompts]
    )
    n = len(prompts)
    return [
        f"generation  batched: {n / t_batched:8.1f} answers/s   one-at-a-time: {n / t_single:8.1f} answers/s"
        f"   speed-up {t_single / t_batched:.1f}x"
    ]


def bench_training(model_dir: Path, cfg: BenchmarkConfig) -> list[str]:
    rng = random.Random(0)
    rows = [
        {"prompt": p.text, "completion": ", ".join(str(rng.randrange(1000)) for _ in range(8))}
        for p in number_prompts(cfg.train_rows, seed=1)
    ]
    lines = []
    for mode in ("lora", "full"):
        model, tok = load_model(model_dir)
        result = train_student(model, tok, rows, "default", TrainConfig(mode=mode, rank=8, epochs=1))
        lines.append(f"training    {mode:>4}: {result.tokens_per_s:8.0f} tokens/s")
    return lines


def main(cfg: BenchmarkConfig) -> Path:
    model_dir = resolve_model_dir(cfg.model)
    model, tok = load_model(model_dir)
    print(
        f"model {model_dir} ({sum(p.numel() for p in model.parameters()):,} parameters), "
        f"{torch.get_num_threads()} threads"
    )
    for line in bench_generation(model, tok, cfg) + bench_training(model_dir, cfg):
        print(line, flush=True)
    if cfg.patching:
        from experiments.bench_patching import bench_patching

        for line in bench_patching(model_dir):
            print(line, flush=True)
    return model_dir


if __name__ == "__main__":
    main(parse_config(BenchmarkConfig))
