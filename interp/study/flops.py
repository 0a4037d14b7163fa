"""A FLOP/s yardstick: the machine's sustained fp32 matmul rate, and the model FLOPs a hot path does.

Model FLOPs count useful work only (real tokens, not padding): a forward pass costs 2 FLOPs per
matmul weight per token plus attention (QK^T and pattern x V: 2 * 2 * n_layers * d_model per attended
position); a training step adds the backward pass, 2 more per weight for the activation gradients and
2 per *trainable* weight for the weight gradients (6x the weights for full fine-tuning, ~4x for LoRA).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MatmulRate:
    """Sustained fp32 matmul FLOP/s, per square size and the best of them (the yardstick)."""

    by_size: dict[int, float]
    threads: int

    @property
    def best(self) -> float:
        return max(self.by_size.values())


def _matmul_flops_per_s(n: int, seconds: float) -> float:
    """FLOP/s of repeated (n x n) @ (n x n) fp32 matmuls, the best of three timed runs of ~`seconds`/3."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up: allocation and kernel selection
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 6:  # calibrate the repetitions of one timed run
        torch.mm(a, b, out=out)
        reps += 1
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def matmul_rate(sizes: Sequence[int] = (128, 512, 1024), seconds: float = 1.0) -> MatmulRate:
    """The machine's sustained fp32 matmul rate at the current torch thread count."""
    return MatmulRate({n: _matmul_flops_per_s(n, seconds) for n in sizes}, torch.get_num_threads())


def matmul_params(model: nn.Module) -> int:
    """Weights a token passes through as matmuls: all parameters, less an input embedding that is not tied
    to the unembedding (a lookup, not a matmul). Norm gains and biases are counted (a rounding error)."""
    total = sum(p.numel() for p in model.parameters())
    embed = getattr(model, "get_input_embeddings", lambda: None)()
    tied = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    return total if embed is None or tied else total - embed.weight.numel()


def attention_flops(model: nn.Module, context: float) -> float:
    """Attention FLOPs of one token attending to `context` positions: 2 * 2 * n_layers * d_model * context."""
    cfg = model.config
    return 4.0 * cfg.num_hidden_layers * cfg.hidden_size * context


def sequence_attention_context(length: int, cached: int = 0) -> float:
    """Total positions attended by `length` new tokens after `cached` ones (causal): sum of 1..n."""
    return (cached + length) * (cached + length + 1) / 2 - cached * (cached + 1) / 2


def inference_flops(model: nn.Module, tokens: int, attended: float) -> float:
    """Forward FLOPs of `tokens` real tokens that together attend to `attended` positions."""
    return 2.0 * matmul_params(model) * tokens + attention_flops(model, attended)


def training_flops(model: nn.Module, tokens: int, attended: float) -> float:
    """Forward + backward FLOPs of `tokens` real tokens (weight gradients only for trainable weights)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = (4.0 * matmul_params(model) + 2.0 * min(trainable, matmul_params(model))) * tokens
    return weights + 3.0 * attention_flops(model, attended)
