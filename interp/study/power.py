"""Power: how large a lift an evaluation can see, before any student is trained.

A lift is a student's mean metric minus its control's, over S training seeds per arm and Q questions asked
of both (paired over questions). Each (seed, question) value is modelled as

    y[s, q] = mu + seed[s] + question[q] + residual[s, q]

The question effect is shared by student and control, so pairing removes it. What is left is the spread
between seeds (`seed_var`: two students trained alike differ in their mean) and the residual
(`residual_var`: how one model's per-question values wander from another's; for the mention rate it holds
the binomial noise of `samples` answers per question, p(1 - p) / samples). The lift's variance is then

    var(lift) = 2 seed_var / S + 2 residual_var / (S Q)

and the minimum detectable lift (MDE) at a two-sided level alpha and a power is
(z_{1 - alpha/2} + z_{power}) sqrt(var(lift)). The residual of the mention rate is split into the
model-by-question part and the sampling part, so that the MDE can be priced at another number of samples.
With one seed per arm the seed variance cannot be read from the data: `estimate_components` says so and
the caller names an assumed value (and the plan prints it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from interp.study.summary import significant


@dataclass(frozen=True)
class Components:
    """Variance components of one metric, read from recorded evaluations."""

    metric: str
    """"p_trait" or "mention"."""
    level: float
    """The metric's mean over the records (what the binomial term is priced at for the mention rate)."""
    seed_var: float | None
    """Between-seed variance of a model's mean; None when the records hold one seed per model."""
    interaction_var: float
    """Model-by-question variance, without the mention rate's sampling noise."""
    samples: int | None = None
    """Answers per question in the records (mention rate only)."""
    seed_source: str = "measured"
    """Where `seed_var` comes from: "measured" from seeds, or a stated assumption."""

    def residual_var(self, samples: int | None = None) -> float:
        """The residual variance per (seed, question) at `samples` answers per question."""
        if self.metric != "mention":
            return self.interaction_var
        k = samples or self.samples
        return self.interaction_var + self.level * (1 - self.level) / k

    def to_json(self) -> dict:
        return asdict(self)


def two_way_residual(values: np.ndarray) -> tuple[float, float]:
    """(between-seed variance of the seed means, residual variance) of a (seeds, questions) array by the
    two-way analysis of variance without replication; needs two seeds or more."""
    y = np.asarray(values, dtype=float)
    s, q = y.shape
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    residual = float((resid**2).sum() / ((s - 1) * (q - 1)))
    seed_means = y.mean(1)
    return float(max(0.0, seed_means.var(ddof=1) - residual / q)), residual


def paired_residual(a: np.ndarray, b: np.ndarray) -> float:
    """The residual variance from two models asked the same questions, one seed each: half the variance
    of their per-question differences (the question effect cancels; what is left is both residuals)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return float(d.var(ddof=1) / 2)


def estimate_components(
    metric: str,
    pairs: list[tuple[np.ndarray, np.ndarray]] = (),
    seeded: list[np.ndarray] = (),
    samples: int | None = None,
) -> Components:
    """Variance components of `metric` from recorded per-question values.

    `pairs`: (model A, model B) per-question arrays of one seed each (e.g. a student and its control);
    `seeded`: (seeds, questions) arrays of models trained alike on several seeds. The residual is pooled
    over both; the seed variance comes from `seeded` only (None without it). For the mention rate,
    `samples` (answers per question in the records) splits off the binomial part of the residual."""
    residuals, levels = [], []
    for a, b in pairs:
        residuals.append(paired_residual(a, b))
        levels += [np.mean(a), np.mean(b)]
    seed_vars = []
    for y in seeded:
        sv, r = two_way_residual(y)
        seed_vars.append(sv)
        residuals.append(r)
        levels.append(np.mean(y))
    if not residuals:
        raise ValueError("estimate_components needs at least one pair or one seeded array")
    level = float(np.mean(levels))
    residual = float(np.mean(residuals))
    binomial = level * (1 - level) / samples if metric == "mention" and samples else 0.0
    return Components(
        metric=metric,
        level=level,
        seed_var=float(np.mean(seed_vars)) if seed_vars else None,
        interaction_var=max(0.0, residual - binomial),
        samples=samples if metric == "mention" else None,
    )


def lift_se(
    c: Components,
    seeds: int,
    questions: int,
    samples: int | None = None,
    seed_var=None,
    control_seeds: int | None = None,
    fixed_control: bool = False,
) -> float:
    """Standard error of a lift with `seeds` training seeds of the student (and `control_seeds` of the
    control, default as many) and `questions` paired questions. A `fixed_control` (the base model, which no
    seed changes) adds no seed variance of its own. `seed_var` overrides the components' (required where
    they hold none)."""
    sv = c.seed_var if seed_var is None else seed_var
    if sv is None:
        raise ValueError(f"the {c.metric} records hold one seed per model: name an assumed seed_var")
    n_c = seeds if control_seeds is None else control_seeds
    seed_part = seed_variance(sv, seeds, None if fixed_control else n_c)
    return math.sqrt(seed_part + c.residual_var(samples) * (1 / seeds + 1 / n_c) / questions)


def seed_variance(seed_var: float, n_student: int, n_control: int | None) -> float:
    """The seed spread's share of a lift's variance: `n_student` students against `n_control` controls, or
    against a fixed model (`n_control` None: the base, which no seed changes)."""
    return seed_var / n_student + (0.0 if n_control is None else seed_var / n_control)


def z_sum(alpha: float = 0.05, power: float = 0.8) -> float:
    """z_{1 - alpha/2} + z_{power}: 2.80 at the usual 0.05 and 80%."""
    n = NormalDist()
    return n.inv_cdf(1 - alpha / 2) + n.inv_cdf(power)


def mde(
    c: Components,
    seeds: int,
    questions: int,
    samples: int | None = None,
    seed_var: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    control_seeds: int | None = None,
    fixed_control: bool = False,
) -> float:
    """The minimum detectable lift: the true lift that a two-sided test at `alpha` finds with `power`."""
    se = lift_se(c, seeds, questions, samples, seed_var, control_seeds, fixed_control)
    return z_sum(alpha, power) * se


@dataclass(frozen=True)
class EvalSize:
    """A planned evaluation, what it can see and what it costs."""

    seeds: int
    questions: int
    samples: int
    mde_p_trait: float
    mde_mention: float
    cost: float
    """The design's compute, in the unit `size_evaluation`'s `cost` returns (seconds in the ladder's plan)."""


def size_evaluation(
    p_trait: Components,
    mention: Components,
    target_p_trait: float,
    cost: Callable[[int, int], float],
    max_seeds: int = 10,
    questions: int = 50,
    samples: tuple[int, ...] = (10, 20, 50, 100),
    seed_var: dict[str, float] | None = None,
) -> list[EvalSize]:
    """Each (seeds, samples) design up to `max_seeds`, with its MDEs and `cost(seeds, samples)`: those whose
    P(trait) MDE is at most `target_p_trait` first, each group cheapest first, so the first row is the plan
    (P(trait) is exact per question: only seeds and questions shrink its MDE; samples shrink the mention
    rate's)."""
    sv = seed_var or {}
    rows = [
        EvalSize(
            s,
            questions,
            k,
            mde(p_trait, s, questions, seed_var=sv.get("p_trait")),
            mde(mention, s, questions, k, seed_var=sv.get("mention")),
            cost(s, k),
        )
        for s in range(1, max_seeds + 1)
        for k in samples
    ]
    return sorted(rows, key=lambda r: (r.mde_p_trait > target_p_trait, r.cost))


def seeds_needed(c: Components, questions: int, target: float, samples: int | None = None) -> int:
    """The fewest training seeds per arm whose MDE is at most `target` (seed variance required)."""
    per_seed = 2 * (c.seed_var + c.residual_var(samples) / questions)  # var(lift) x seeds
    return max(1, math.ceil(per_seed * (z_sum() / target) ** 2))


def design_line(comps: dict[str, Components], questions: int, target: float, cost: Callable) -> str:
    """The cheapest (seeds, samples) design that brings the P(trait) MDE to `target`, with its cost; where
    no design up to 10 seeds does, the seeds it would take."""
    best = size_evaluation(comps["p_trait"], comps["mention"], target, cost, questions=questions)[0]
    if best.mde_p_trait > target:
        need = seeds_needed(comps["p_trait"], questions, target)
        return (
            f"  no design up to 10 seeds reaches P(trait) MDE <= {target:g}: it takes {need} seeds per arm, "
            f"about {cost(need, best.samples) / 3600:.1f} h per rung on LoRA"
        )
    return (
        f"  cheapest design that meets P(trait) MDE <= {target:g}: {best.seeds} seed(s) x {best.samples} "
        f"samples per question (MDEs {best.mde_p_trait:.3g} P(trait), {best.mde_mention:.3g} mention), about "
        f"{best.cost / 3600:.1f} h per rung on LoRA"
    )


def describe_power(
    comps: dict[str, Components],
    seeds: int,
    questions: int,
    samples: int,
    target_p_trait: float,
    cost: Callable[[int, int], float] | None = None,
) -> str:
    """The MDE of each metric at the planned seeds, questions and samples, where its spread comes from, and
    how many seeds bring the P(trait) MDE to `target_p_trait`; with `cost` (seconds of a design), the
    cheapest design that does. With the seed spread unknown, the MDE from the question spread alone is a
    floor: the true MDE is larger."""
    q, k = questions, samples
    lines = [f"Power (80%, two-sided 0.05), {seeds} seed(s) per arm, {q} questions x {k} samples:"]
    for metric, c in comps.items():
        resid = c.residual_var(k) ** 0.5
        if c.seed_var is None:
            floor = mde(c, seeds, q, k, seed_var=0.0)
            lines.append(
                f"  {metric}: MDE >= {floor:.3g} from the question spread alone (residual SD {resid:.3g}); the "
                "seed spread is unknown (one seed per model): give --seed-sd-* or --control-seeds"
            )
            continue
        line = (
            f"  {metric}: MDE {mde(c, seeds, q, k):.3g} (residual SD {resid:.3g}, seed SD {c.seed_var**0.5:.3g} "
            f"{c.seed_source}, level {c.level:.3g})"
        )
        if metric == "p_trait":
            line += f"; MDE <= {target_p_trait:g} needs {seeds_needed(c, q, target_p_trait)} seed(s) per arm"
        lines.append(line)
    if cost is not None and all(c.seed_var is not None for c in comps.values()):
        lines.append(design_line(comps, q, target_p_trait, cost))
    return "\n".join(lines)


def seed_verdict(c: Components, lift: float, ci: list[float], n_student: int, n_control: int | None) -> dict:
    """A lift's verdict with the seed spread in it. The bootstrap CI resamples the seeds there are, so with
    one seed per arm it holds none of the seed spread: the lift must also clear a CI that adds the seed
    variance measured on the control seeds to the bootstrap's own spread (a base control adds none; with
    several seeds per arm the bootstrap already holds some of it, so this is conservative). Unknown seed
    spread: a positive lift whose bootstrap CI excludes 0 is a "lead", not a transfer."""
    over_questions = bool(significant(ci) and lift > 0)
    if c.seed_var is None:
        verdict = "lead" if over_questions else "null"
        return {f"{c.metric}_seed_ci": None, f"{c.metric}_verdict": verdict, f"{c.metric}_transfers": False}
    se_questions = (ci[1] - ci[0]) / (2 * 1.96)
    se = (se_questions**2 + seed_variance(c.seed_var, n_student, n_control)) ** 0.5
    seed_ci = [lift - 1.96 * se, lift + 1.96 * se]
    transfers = over_questions and seed_ci[0] > 0
    verdict = "transfers" if transfers else "lead" if over_questions else "null"
    return {
        f"{c.metric}_seed_ci": seed_ci,
        f"{c.metric}_verdict": verdict,
        f"{c.metric}_transfers": transfers,
    }


def recorded_pairs(paths: Iterable[str | Path], key: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(student, its control) per-question arrays of one metric from recorded rank-sweep results."""
    pairs = []
    for path in paths:
        res = json.loads(Path(path).read_text())
        control = np.asarray(res["control"][key])
        for row in res.get("rank_sweep", []):
            pairs.append((np.asarray(row[key]), control))
    return pairs
