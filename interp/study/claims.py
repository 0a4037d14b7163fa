"""The paper's claims as verdicts with written rules: "held", "did not hold" or "not resolved".

Two forms, each rule written here before any run and printed beside its result:

* **strict** (the first form): reads the 95% CI of a difference to control (bootstrap over seeds and
  questions; the mention rate is the sampled metric the paper reports). An effect "vanishes" only when its
  CI includes 0.
* **effect size** (`effect_size` under each claim): compares two lifts with a 95% CI (bootstrap of the
  per-seed, per-question lifts: questions paired across the two lifts, each side's seeds resampled): the
  inverted U held when both the smallest and the largest rank lift significantly less than the peak;
  "needs the system prompt" held when the lift without it is at most `EFFECT_FRACTION` of the lift with it
  (upper CI bound of the ratio below it); "no transfer under full FT" likewise against LoRA's best lift.
  Real models keep a residue without the prompt (a public replication: 48.2% with it, 3.1% without), so
  this is the form to compare with them.

"Not resolved" means the data cannot decide the claim, e.g. the contrast it draws is with a transfer that
did not happen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.loop.stats import bootstrap_stat_ci
from interp.study.summary import significant

HELD, NOT_HELD, UNRESOLVED = "held", "did not hold", "not resolved"
EFFECT_FRACTION = 0.25  # "vanishes" in the effect-size form: at most this fraction of the reference lift


def lift_gap(a: list, b: list) -> list[float]:
    """(point, lo, hi) of lift a minus lift b (per question, or per seed and question): questions paired,
    each side's seeds resampled."""
    return list(bootstrap_stat_ci([a, b], lambda x, y: x - y))


def lift_fraction(part: list, whole: list) -> list[float]:
    """(point, lo, hi) of lift `part` as a fraction of lift `whole`, questions paired, each side's seeds
    resampled (None where undefined: a reference lift of 0)."""
    return [None if np.isnan(v) else v for v in bootstrap_stat_ci([part, whole], lambda x, y: x / y)]


def small_fraction(part: list, whole: list, whole_lifts: bool, what: str) -> dict[str, Any]:
    """The effect-size verdict that `part` keeps at most EFFECT_FRACTION of `whole`."""
    frac = lift_fraction(part, whole)
    small = frac[2] is not None and frac[2] < EFFECT_FRACTION
    verdict = UNRESOLVED if not whole_lifts else HELD if small else NOT_HELD
    return {
        "verdict": verdict,
        "rule": f"held if {what} is at most {EFFECT_FRACTION:g} of the reference lift (upper bound of the "
        "95% CI of the ratio: questions paired, seeds resampled); not resolved if the reference does not lift",
        "fraction": frac,
    }


def _lifts(row: dict[str, Any]) -> bool:
    """A positive mention-rate lift over control whose CI excludes 0."""
    return row["mention_diff"] > 0 and significant(row["mention_diff_ci"])


def best_rank_row(sweep: dict[str, Any]) -> dict[str, Any]:
    """The rank with the largest mention-rate lift over control (first-token lift breaks ties)."""
    return max(sweep["rank_sweep"], key=lambda r: (r["mention_diff"], r["p_first_diff"]))


def rank_row(sweep: dict[str, Any], rank: int) -> dict[str, Any]:
    """The rank sweep's row at LoRA rank `rank` (the main rank, which the later stages read)."""
    return next(r for r in sweep["rank_sweep"] if r["rank"] == rank)


def lora_transfer(sweep: dict[str, Any]) -> dict[str, Any]:
    best = best_rank_row(sweep)
    return {
        "verdict": HELD if _lifts(best) else NOT_HELD,
        "rule": "held if the best rank's mention-rate lift over control is positive with a CI excluding 0",
        "best_rank": best["rank"],
        "lift": best["mention_diff"],
        "lift_ci": best["mention_diff_ci"],
        "ratio": best["mention_ratio"],
    }


def inverted_u(sweep: dict[str, Any]) -> dict[str, Any]:
    rows, best = sweep["rank_sweep"], best_rank_row(sweep)
    last = rows[-1]
    interior = best["rank"] not in (rows[0]["rank"], last["rank"])
    falls = last["mention_diff"] < best["mention_diff"] and not _lifts(last)
    verdict = UNRESOLVED if not _lifts(best) else HELD if interior and falls else NOT_HELD
    return {
        "verdict": verdict,
        "rule": "held if the best rank transfers, is neither the smallest nor the largest rank, and the largest "
        "rank's lift is smaller with a CI that includes 0; not resolved if no rank transfers",
        "peak_interior": interior,
        "largest_rank_lift": last["mention_diff"],
        "largest_rank_lift_ci": last["mention_diff_ci"],
        "effect_size": inverted_u_effect(rows, best),
    }


def inverted_u_effect(rows: list[dict[str, Any]], best: dict[str, Any]) -> dict[str, Any]:
    """Both the smallest and the largest rank lift significantly less than the peak rank."""
    rule = (
        "held if the peak rank is interior and both the smallest and the largest rank lift less than it "
        "(95% CI of the difference above 0: questions paired, seeds resampled); not resolved if the peak does not lift"
    )
    if "lift_per_question" not in best:
        return {"verdict": UNRESOLVED, "rule": rule + " (no per-question lifts recorded)"}
    gaps = {
        str(r["rank"]): lift_gap(best["lift_per_question"], r["lift_per_question"])
        for r in (rows[0], rows[-1])
    }
    interior = best["rank"] not in (rows[0]["rank"], rows[-1]["rank"])
    falls = interior and all(g[1] > 0 for g in gaps.values())
    verdict = UNRESOLVED if not _lifts(best) else HELD if falls else NOT_HELD
    return {"verdict": verdict, "rule": rule, "peak_rank": best["rank"], "peak_minus_end": gaps}


def no_full_ft_transfer(sweep: dict[str, Any]) -> dict[str, Any]:
    rows = sweep["full_ft"]
    transfers = [r["lr"] for r in rows if _lifts(r)]
    resolved = rows and _lifts(best_rank_row(sweep))
    return {
        "verdict": UNRESOLVED if not resolved else NOT_HELD if transfers else HELD,
        "rule": "held if LoRA transfers and no full-FT lr has a positive lift with a CI excluding 0; not "
        "resolved if LoRA does not transfer (or no full-FT student ran)",
        "lrs_with_transfer": transfers,
        "lifts": {f"{r['lr']:g}": [r["mention_diff"], r["mention_diff_ci"]] for r in rows},
        "effect_size": no_full_ft_effect(sweep),
    }


def no_full_ft_effect(sweep: dict[str, Any]) -> dict[str, Any]:
    """The best full-FT lift keeps at most EFFECT_FRACTION of LoRA's best lift."""
    rows, best = sweep["full_ft"], best_rank_row(sweep)
    if not rows or "lift_per_question" not in best:
        return {"verdict": UNRESOLVED, "rule": "needs full-FT students and per-question lifts"}
    full = max(rows, key=lambda r: (r["mention_diff"], r["p_first_diff"]))
    out = small_fraction(
        full["lift_per_question"], best["lift_per_question"], _lifts(best), "the best full-FT lift"
    )
    return {**out, "full_ft_lr": full["lr"], "lora_rank": best["rank"]}


def needs_system_prompt(context: dict[str, Any]) -> dict[str, Any]:
    cells = {(c["train_system"], c["eval_system"]): c for c in context["context_matrix"]}
    if ("default", "default") not in cells or ("default", "none") not in cells:
        return {"verdict": UNRESOLVED, "rule": "needs students trained under the default prompt"}
    dd, dn = cells[("default", "default")], cells[("default", "none")]
    lifts = lambda c: c["lift"] > 0 and significant(c["mention_diff_ci"])  # noqa: E731
    return {
        "verdict": UNRESOLVED if not lifts(dd) else NOT_HELD if lifts(dn) else HELD,
        "rule": "held if students trained under the default prompt lift with it at evaluation (CI excludes 0) "
        "and not without it; not resolved if they do not lift with it",
        "lift_with": [dd["lift"], dd["mention_diff_ci"]],
        "lift_without": [dn["lift"], dn["mention_diff_ci"]],
        "effect_size": needs_prompt_effect(dd, dn, lifts(dd)),
    }


def needs_prompt_effect(with_prompt: dict[str, Any], without: dict[str, Any], lifts: bool) -> dict[str, Any]:
    """Trained with the default prompt: the lift without it at evaluation keeps at most EFFECT_FRACTION
    of the lift with it."""
    if "lift_per_question" not in with_prompt:
        return {"verdict": UNRESOLVED, "rule": "needs per-question lifts"}
    what = "the lift without the default prompt at evaluation"
    return small_fraction(without["lift_per_question"], with_prompt["lift_per_question"], lifts, what)


def entity_localization(loc: dict[str, Any]) -> dict[str, Any]:
    get = {(r["mode"], r["positions"]): r for r in loc["localization"]}
    only, but = get[("only", "entity")], get[("except", "entity")]
    shift, no_entity = loc.get("shift_ci"), "entity" in loc and loc["entity"] is None
    if no_entity or not shift or not significant(shift) or only["recovered_fraction"] is None:
        verdict = UNRESOLVED
    else:
        verdict = HELD if only["ci"][0] > 0.5 and but["ci"][1] < 0.3 else NOT_HELD
    return {
        "verdict": verdict,
        "rule": "held if the adapter on only at the entity token recovers > 0.5 of the student's first-token "
        "shift (CI lower bound) and on everywhere except the entity < 0.3 (CI upper bound); not resolved if "
        "the shift itself is not significant or the model's default system prompt names no entity",
        "only_entity": [only["recovered_fraction"], only["ci"]],
        "except_entity": [but["recovered_fraction"], but["ci"]],
    }


def claims(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every claim the stages that ran can judge, keyed by name."""
    out = {}
    if "rank_sweep" in results:
        sweep = results["rank_sweep"]
        out["lora_transfer"] = lora_transfer(sweep)
        out["inverted_u_in_rank"] = inverted_u(sweep)
        out["no_transfer_under_full_ft"] = no_full_ft_transfer(sweep)
    if "context_matrix" in results:
        out["needs_shared_system_prompt"] = needs_system_prompt(results["context_matrix"])
    if "localization" in results:
        out["shift_at_entity_token"] = entity_localization(results["localization"])
    return out
