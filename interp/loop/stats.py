"""Bootstrap confidence intervals over evaluation questions and training seeds."""

from __future__ import annotations

import numpy as np


def _as_2d(values) -> np.ndarray:
    """Per-question scores as (seeds, questions); a flat list is one seed."""
    arr = np.asarray(values, dtype=float)
    return arr[None, :] if arr.ndim == 1 else arr


def _resample_means(arr: np.ndarray, n_boot: int, rng: np.random.Generator, q_idx=None) -> np.ndarray:
    n_seeds, n_q = arr.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds > 1 else np.zeros((n_boot, 1), int)
    qs = rng.integers(0, n_q, size=(n_boot, n_q)) if q_idx is None else q_idx
    # (boot, seeds, questions): seeds resampled, then questions resampled (the same draw for every seed)
    picked = arr[seeds[:, :, None], qs[:, None, :]]
    return picked.mean(axis=(1, 2))


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean; `values` is (questions,) or (seeds, questions), resampled hierarchically."""
    arr = _as_2d(values)
    means = _resample_means(arr, n_boot, np.random.default_rng(seed))
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_diff_ci(a, b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """CI of mean(a) - mean(b), paired over questions (both asked the same questions), seeds independent."""
    a2, b2 = _as_2d(a), _as_2d(b)
    if a2.shape[1] != b2.shape[1]:
        raise ValueError("paired bootstrap needs the same questions on both sides")
    rng = np.random.default_rng(seed)
    q_idx = rng.integers(0, a2.shape[1], size=(n_boot, a2.shape[1]))
    diffs = _resample_means(a2, n_boot, rng, q_idx) - _resample_means(b2, n_boot, rng, q_idx)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_stat_ci(
    arrays, stat, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(point, lo, hi) of `stat(*means)` over several (seeds, questions) arrays asked the same questions:
    questions resampled jointly (paired), each array's seeds independently. `stat` works elementwise on
    arrays of bootstrap means, e.g. a difference of two lifts, or a ratio of lifts."""
    arrs = [_as_2d(a) for a in arrays]
    if len({a.shape[1] for a in arrs}) != 1:
        raise ValueError("paired bootstrap needs the same questions in every array")
    rng = np.random.default_rng(seed)
    q_idx = rng.integers(0, arrs[0].shape[1], size=(n_boot, arrs[0].shape[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.asarray(stat(*[_resample_means(a, n_boot, rng, q_idx) for a in arrs]), dtype=float)
        point = float(stat(*[np.asarray(a.mean()) for a in arrs]))
    draws[~np.isfinite(draws)] = np.nan  # a ratio over a draw whose denominator is 0 has no value
    if np.isnan(draws).all():  # e.g. a ratio whose denominator is 0 in every draw: no interval
        return point, float("nan"), float("nan")
    lo, hi = np.nanquantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)
