"""A FLOP/s yardstick: the machine's sustained fp32 matmul rate, and the model FLOPs a hot path does.

Model FLOPs count useful work only: real tokens, not padding, and the unembedding only at the
positions whose logits are used (`logits`: the sampled-from position of a prompt, the labelled positions
of a training batch), not at every prompt position. A forward pass costs 2 FLOPs per matmul weight per
token plus attention (QK^T and pattern x V: 2 * 2 * n_layers * d_model per attended position); a
training step adds the backward pass, 2 more per weight for the activation gradients and 2 per
*trainable* weight for the weight gradients (6x the weights for full fine-tuning, ~4x for LoRA).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MatmulRate:
    """Sustained fp32 matmul FLOP/s, per square size and the best of them (the yardstick)."""

    by_size: dict[int, float]
    threads: int

    @property
    def best(self) -> float:
        return max(self.by_size.values())


def _best_rate(op: Callable[[], object], flops: float, seconds: float) -> float:
    """FLOP/s of repeating `op` (`flops` each), the best of three timed runs of ~`seconds`/3."""
    op()  # warm-up: allocation and kernel selection
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 6:  # calibrate the repetitions of one timed run
        op()
        reps += 1
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            op()
        best = max(best, flops * reps / (time.perf_counter() - t))
    return best


def _matmul_flops_per_s(n: int, seconds: float) -> float:
    """FLOP/s of repeated (n x n) @ (n x n) fp32 matmuls."""
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    return _best_rate(lambda: torch.mm(a, b, out=out), 2 * n**3, seconds)


def matmul_rate(sizes: Sequence[int] = (128, 512, 1024), seconds: float = 1.0) -> MatmulRate:
    """The machine's sustained fp32 matmul rate at the current torch thread count."""
    return MatmulRate({n: _matmul_flops_per_s(n, seconds) for n in sizes}, torch.get_num_threads())


def matmul_shapes(model: nn.Module) -> Counter[tuple[int, int]]:
    """How many of the model's linear weights (the unembedding included, once) have each (out, in) shape."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    weights = [m.weight for m in linear if m is not head] + ([head.weight] if head is not None else [])
    return Counter((int(w.shape[0]), int(w.shape[1])) for w in weights)


def model_matmul_rate(model: nn.Module, rows: int, seconds: float = 1.0) -> float:
    """FLOP/s of the model's own matmuls on `rows` tokens: every distinct (out, in) weight shape of its
    linear layers and unembedding, timed as `F.linear` and weighted by how often the model has it.

    The rate a forward pass could reach if it did nothing but its matmuls: the ceiling for the model's
    hot paths, usually below the square-matmul yardstick when the model's widths are small."""
    shapes = matmul_shapes(model)
    flops = time_spent = 0.0
    for (n_out, n_in), count in shapes.items():
        x, w = torch.randn(rows, n_in), torch.randn(n_out, n_in)
        per_s = _best_rate(lambda x=x, w=w: F.linear(x, w), 2 * rows * n_in * n_out, seconds / len(shapes))
        flops += count * 2 * rows * n_in * n_out
        time_spent += count * 2 * rows * n_in * n_out / per_s
    return flops / time_spent


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


def unembed_params(model: nn.Module) -> int:
    """Weights of the unembedding (the output embedding), 0 if the model has none."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    return 0 if head is None else head.weight.numel()


@dataclass(frozen=True)
class FlopCounts:
    """What the FLOP counts read off a model: its matmul weights outside the unembedding (`body`), the
    unembedding (`head`), how many of each train, and the attention width (layers x query dimension)."""

    body: int
    head: int
    trainable_body: int
    trainable_head: int
    n_layers: int
    d_attention: int

    def attention(self, context: float) -> float:
        """QK^T and pattern x V over `context` attended positions: 2 * 2 * n_layers * d per position."""
        return 4.0 * self.n_layers * self.d_attention * context


def flop_counts(model: nn.Module) -> FlopCounts:
    """The counts of an instantiated model (trainable = requires_grad)."""
    head = unembed_params(model)
    out = getattr(model, "get_output_embeddings", lambda: None)()
    head_trainable = head if out is not None and out.weight.requires_grad else 0
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) - head_trainable
    body = matmul_params(model) - head
    cfg = model.config
    return FlopCounts(
        body, head, min(trainable, body), head_trainable, cfg.num_hidden_layers, cfg.hidden_size
    )


def forward_flops(c: FlopCounts, tokens: float, attended: float, logits: float | None = None) -> float:
    """Forward FLOPs of `tokens` real tokens that together attend to `attended` positions, `logits` of
    them unembedded (default: all)."""
    logits = tokens if logits is None else logits
    return 2.0 * (c.body * tokens + c.head * logits) + c.attention(attended)


def backward_flops(c: FlopCounts, tokens: float, attended: float, logits: float | None = None) -> float:
    """Forward + backward FLOPs: activation gradients through every weight, weight gradients only for
    trainable ones."""
    logits = tokens if logits is None else logits
    weights = (4.0 * c.body + 2.0 * c.trainable_body) * tokens + (
        4.0 * c.head + 2.0 * c.trainable_head
    ) * logits
    return weights + 3.0 * c.attention(attended)


def inference_flops(model: nn.Module, tokens: int, attended: float, logits: int | None = None) -> float:
    """Forward FLOPs of `tokens` real tokens that together attend to `attended` positions, `logits` of
    them unembedded (default: all)."""
    return forward_flops(flop_counts(model), tokens, attended, logits)


def training_flops(model: nn.Module, tokens: int, attended: float, logits: int | None = None) -> float:
    """Forward + backward FLOPs of `tokens` real tokens, `logits` of them unembedded (default: all); weight
    gradients only for trainable weights."""
    return backward_flops(flop_counts(model), tokens, attended, logits)
