"""Tolerances drawn from float32's epsilon and the size of what is compared, so that a test passes on any
x86 CPU (other SIMD widths sum in other orders) and still fails on a real difference."""

from __future__ import annotations

import torch

EPS32 = torch.finfo(torch.float32).eps
ULPS = 256
"""Rounding steps allowed per unit of magnitude: deep sums (a 30-layer forward pass) lose a few hundred."""


def atol_for(*tensors: torch.Tensor | float, ulps: int = ULPS) -> float:
    """An absolute tolerance of `ulps` float32 steps at the largest magnitude among `tensors`."""
    scale = max(float(torch.as_tensor(t).abs().max()) for t in tensors)
    return ulps * EPS32 * max(scale, EPS32)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, ulps: int = ULPS) -> None:
    torch.testing.assert_close(actual, expected, atol=atol_for(actual, expected, ulps=ulps), rtol=0)


def score_atol(result, ulps: int = ULPS) -> float:
    """A patching score is (metric - recipient) / (donor - recipient): its rounding is the metric's,
    divided by the gap between donor and recipient."""
    gap = abs(result.donor_metric - result.recipient_metric)
    return atol_for(result.raw, result.donor_metric, result.recipient_metric, ulps=ulps) / gap
