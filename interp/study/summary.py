"""Turn per-job evaluation results into the paper's numbers: one schema for a pooled metric, one for a
difference to control, used by every script, the report and results.json.

Words, defined once: a student's **difference** (or **lift**) is its metric minus its control's, the
same metric, paired over questions; its **ratio** is its metric divided by its control's. A lift is never
a ratio. The metrics are the sampled **mention rate**, the exact **P(trait)** (the whole word, every
spelling) and the exact **first-token P(trait)** (the paper's; the word's probability only where the word
is one token).
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

from interp.loop.stats import bootstrap_ci, bootstrap_diff_ci


class Pooled(TypedDict):
    """A metric pooled over seeds and questions, with 95% CIs (bootstrap over seeds, then questions)."""

    mention_rate: float
    ci: list[float]
    p_first_token: float
    p_ci: list[float]
    seeds: int
    per_question_mention: list[float]  # mean over seeds, per question
    per_question_p: list[float]
    p_trait: float
    p_trait_ci: list[float]
    per_question_p_trait: list[float]


class VersusControl(TypedDict):
    """A student against its control: difference (its CI, paired over questions) and ratio, per metric."""

    mention_diff: float
    mention_diff_ci: list[float]
    mention_ratio: float | None
    p_first_diff: float
    p_first_diff_ci: list[float]
    p_first_ratio: float | None
    p_trait_diff: float
    p_trait_diff_ci: list[float]
    p_trait_ratio: float | None


PER_QUESTION = {"mention": "per_question_mention", "p": "per_question_p", "p_trait": "per_question_p_trait"}


def _per_question(e: dict[str, Any], metric: str) -> list[float]:
    """One evaluation's per-question values; NaN for a metric it predates (P(trait) in an old cache)."""
    return e.get(PER_QUESTION[metric]) or [float("nan")] * len(e["per_question_mention"])


def per_question(results: list[dict[str, Any]], system: str, metric: str) -> np.ndarray:
    """(seeds, questions) array of a metric ("mention", "p" or "p_trait") from student/base cell results."""
    return np.array([_per_question(r["evals"][system], metric) for r in results], dtype=float)


def pool(evals: list[dict[str, Any]]) -> Pooled:
    """Pool evaluations (one `TraitEval.to_json()` per seed) of one model kind under one system prompt."""
    m, p, w = (
        np.array([_per_question(e, k) for e in evals], dtype=float) for k in ("mention", "p", "p_trait")
    )
    return Pooled(
        mention_rate=float(m.mean()),
        ci=list(bootstrap_ci(m)),
        p_first_token=float(p.mean()),
        p_ci=list(bootstrap_ci(p)),
        seeds=len(evals),
        per_question_mention=m.mean(0).tolist(),
        per_question_p=p.mean(0).tolist(),
        p_trait=float(w.mean()),
        p_trait_ci=list(bootstrap_ci(w)),
        per_question_p_trait=w.mean(0).tolist(),
    )


def pooled(results: list[dict[str, Any]], system: str = "default") -> Pooled:
    """`pool` over job results that hold evaluations per system prompt (`result["evals"][system]`)."""
    return pool([r["evals"][system] for r in results])


def versus_control(
    results: list[dict[str, Any]], control: list[dict[str, Any]], system: str = "default"
) -> VersusControl:
    """Difference to the control students (paired over questions), with 95% CIs; and the ratio."""
    out = {}
    for metric, name in (("mention", "mention"), ("p", "p_first"), ("p_trait", "p_trait")):
        a, b = per_question(results, system, metric), per_question(control, system, metric)
        out[f"{name}_diff"] = float(a.mean() - b.mean())
        out[f"{name}_diff_ci"] = list(bootstrap_diff_ci(a, b))
        out[f"{name}_ratio"] = float(a.mean() / b.mean()) if b.mean() > 0 else None
    return VersusControl(**out)


def lift_per_question(
    results: list[dict[str, Any]],
    control: list[dict[str, Any]],
    system: str = "default",
    metric: str = "mention",
) -> list[list[float]]:
    """The lift in `metric` (the mention rate unless told) per (student seed, question): each student minus
    the control of its own seed where student and control seeds pair up (a study trains them in the same
    order), else minus the controls' mean. What the effect-size rules bootstrap over: questions paired across
    arms and evaluation prompts, seeds resampled, so that seed-to-seed spread widens their CIs as it widens
    the lift's own."""
    a, b = per_question(results, system, metric), per_question(control, system, metric)
    return (a - b if a.shape == b.shape else a - b.mean(0)).tolist()


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


def context_cells(
    results: dict, sys_map: dict[str, str], trained: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The context matrix's cells: for each training prompt (`trained`, default every one in `sys_map`) and
    each evaluation prompt, the students' pooled metrics and lift over the controls trained and evaluated
    the same way. `results[(train, "trait" | "control")]` holds job results with evaluations per prompt."""
    rows = []
    for train in trained or sys_map:
        student, control = results[(train, "trait")], results[(train, "control")]
        for ev in sys_map:
            stats, diff = pooled(student, ev), versus_control(student, control, ev)
            rows.append(
                {
                    "train_system": train,
                    "eval_system": ev,
                    **stats,
                    **diff,
                    "control_mention_rate": pooled(control, ev)["mention_rate"],
                    "lift": diff["mention_diff"],
                    "lift_per_question": lift_per_question(student, control, ev),
                }
            )
    return rows
