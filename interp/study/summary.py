"""Turn per-cell evaluation results into the paper's numbers: pooled means, CIs, lifts over control."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.loop.stats import bootstrap_ci, bootstrap_diff_ci


def per_question(results: list[dict[str, Any]], system: str, metric: str) -> np.ndarray:
    """(seeds, questions) array of a metric ("mention" or "p") from student/base cell results."""
    key = "per_question_mention" if metric == "mention" else "per_question_p"
    return np.array([r["evals"][system][key] for r in results], dtype=float)


def pooled(results: list[dict[str, Any]], system: str = "default") -> dict[str, Any]:
    """Mention rate and first-token probability over seeds and questions, with 95% CIs."""
    m, p = per_question(results, system, "mention"), per_question(results, system, "p")
    return {
        "mention_rate": float(m.mean()),
        "ci": list(bootstrap_ci(m)),
        "p_first_token": float(p.mean()),
        "p_ci": list(bootstrap_ci(p)),
        "seeds": len(results),
    }


def lift(
    results: list[dict[str, Any]], control: list[dict[str, Any]], system: str = "default"
) -> dict[str, Any]:
    """Difference to the control students (paired over questions), with 95% CIs; and the ratio."""
    out = {}
    for metric, name in (("mention", "mention"), ("p", "p_first")):
        a, b = per_question(results, system, metric), per_question(control, system, metric)
        out[f"{name}_diff"] = float(a.mean() - b.mean())
        out[f"{name}_diff_ci"] = list(bootstrap_diff_ci(a, b))
        out[f"{name}_ratio"] = float(a.mean() / b.mean()) if b.mean() > 0 else None
    return out


def significant(ci: list[float]) -> bool:
    """Whether a 95% CI of a difference excludes zero."""
    return ci[0] > 0 or ci[1] < 0


def recovered_fraction(
    restricted: np.ndarray, full: np.ndarray, base: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """(restricted - base) / (full - base) per the paper, with a bootstrap CI over questions."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(full), size=(n_boot, len(full)))
    num = restricted[idx].mean(1) - base[idx].mean(1)
    den = full[idx].mean(1) - base[idx].mean(1)
    ratios = np.where(np.abs(den) > 1e-12, num / np.where(den == 0, 1, den), np.nan)
    point = (
        (restricted.mean() - base.mean()) / (full.mean() - base.mean())
        if full.mean() != base.mean()
        else None
    )
    lo, hi = np.nanquantile(ratios, [0.025, 0.975])
    return {"recovered_fraction": None if point is None else float(point), "ci": [float(lo), float(hi)]}
