"""Each arm's best lr from an lr screen of finished students (no training), by stated rules.

A screen is students grouped by label, r<rank>@<lr> or full@<lr> as `interp.study.rank_column` labels them,
one or more seeds per lr; an arm is a LoRA rank or full FT. Each lr's row holds its lifts over one reference
(with 95% CIs over seeds and questions) and its end-of-training loss. Each arm gets a pick per rule:

- **fit**: the lr whose students end training with the lowest loss (a student's final loss is the mean over
  the last tenth of its curve; in one epoch every batch is scored before it is trained on, so this is a
  held-out fit to the teacher). The rule never reads the trait, so a claim read at these lrs was not chosen
  toward its own result.
- **lift among sound**: the lr with the largest P(trait) lift among the arm's *sound* lrs, those whose final
  loss is at most `max_loss_ratio` times the arm's lowest. A student whose fit is that much worse has
  overshot its own objective, and a lift it shows may be bought with a damaged model. The bound is a
  judgment the caller states, not a measurement of the answers' fluency.
- **lift among fluent** (only where the students carry `example_nll`, the base's NLL per token of their
  example answers, `interp.loop.fluency`): the largest P(trait) lift among lrs whose answers' *excess* NLL
  over the reference's own answers (paired per question, mean over seeds) is at most `max_excess_nll` nats
  per token. It reads the answers rather than the fit; its bound is also a stated judgment, in units of the
  answers' likelihood.

    from interp.study.lr_screen import screen
    from interp.study.rank_column import read_groups, read_references
    res = screen(read_groups(["r16@1e-3=a.result.json", "r16@3e-3=b.result.json"]),
                 read_references(["base.result.json"]))
    res["best"]["fit"]["LoRA r16"]          # the label to hand to rank_column, e.g. "r16@0.001"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp import InterpError
from interp.loop.stats import bootstrap_diff_ci
from interp.study.rank_column import describe_reference, group_lr, parse_label
from interp.study.summary import pooled, versus_control

RULES = {
    "fit": "the lowest final loss (a held-out fit to the teacher; never reads the trait)",
    "lift_among_sound": "the largest P(trait) lift among lrs whose final loss is at most {ratio:g}x the arm's lowest",
}
FLUENT_RULE = (
    "the largest P(trait) lift among lrs whose answers' excess NLL per token under the base, over the "
    "reference's answers, is at most {excess:g} nats"
)
KEPT = (
    "seeds",
    "p_trait",
    "mention_rate",
    "p_trait_diff",
    "p_trait_diff_ci",
    "mention_diff",
    "mention_diff_ci",
)
"""The fields of the pooled students and their lifts that a screen row keeps."""


def arm_name(spec: dict[str, Any]) -> str:
    return "full FT" if spec["mode"] == "full" else f"LoRA r{spec['rank']}"


def final_losses(label: str, students: list[dict[str, Any]]) -> list[float]:
    """Each seed's final loss; a student without one (the base, a record that lost it) is one error."""
    losses = [s.get("final_loss") for s in students]
    missing = [s["path"] for s, loss in zip(students, losses, strict=True) if loss is None]
    if missing:
        raise InterpError(f"{label}: {missing[0]} has no final_loss (an lr screen reads trained students)")
    return [float(x) for x in losses]


def has_fluency(results: list[dict[str, Any]]) -> bool:
    return all("example_nll" in r for r in results)


def excess_nll(students: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """The students' example answers' NLL per token under the base minus the reference's answers', paired per
    question, with a 95% CI over seeds and questions. A question is compared where every student and
    reference scored an answer there (an empty answer, or one left out for naming the trait, is not scored),
    so two rows may rest on different questions; none left gives NaN (never fluent)."""
    check_same_questions(students + reference)
    a = np.array([s["example_nll"] for s in students], dtype=float)
    b = np.array([r["example_nll"] for r in reference], dtype=float)
    keep = np.isfinite(a).all(0) & np.isfinite(b).all(0)
    out = {"questions_compared": int(keep.sum()), "unscored_answers": int((~np.isfinite(a)).sum())}
    if not keep.any():
        return {
            "excess_nll": float("nan"),
            "excess_nll_ci": [float("nan")] * 2,
            "answer_nll": float("nan"),
            **out,
        }
    a, b = a[:, keep], b[:, keep]
    return {"excess_nll": float(a.mean() - b.mean()), "excess_nll_ci": list(bootstrap_diff_ci(a, b)),
            "answer_nll": float(a.mean()), **out}  # fmt: skip


def check_same_questions(results: list[dict[str, Any]]) -> None:
    """Example answers pair by question only if every evaluation asked the same questions the same way."""
    asked = {
        (s.get("category"), s.get("system"), s.get("n_questions"), len(r["example_nll"]))
        for r in results
        for s in [r["evals"]["default"].get("settings", {})]
    }
    if len(asked) > 1:
        raise InterpError(
            f"example answers to different questions (category, system prompt, questions, examples): {sorted(asked, key=str)}"
        )


def screen_row(
    label: str, students: list[dict[str, Any]], reference: list[dict[str, Any]], fluency: bool
) -> dict[str, Any]:
    """One lr of one arm: its lifts over the reference, its seeds' final losses and, where measured, its
    answers' excess NLL."""
    arm = arm_name(parse_label(label))  # a bad label is the first error
    lifts = {**pooled(students), **versus_control(students, reference)}
    losses, lr = final_losses(label, students), group_lr(label, students)
    return {
        "arm": arm,
        "label": f"{label.split('@')[0]}@{lr:g}",
        "lr": lr,
        **{k: lifts[k] for k in KEPT},
        "final_loss": float(np.mean(losses)),
        "final_losses": losses,
        **(excess_nll(students, reference) if fluency else {}),
        "students": [s["path"] for s in students],
    }


def pick(rows: list[dict[str, Any]], max_loss_ratio: float, max_excess_nll: float | None) -> dict[str, Any]:
    """One arm's rows (sorted by lr) marked with their loss ratio, soundness and (where measured) fluency,
    and its picks by each rule: label and runner-up. No lr within a bound leaves that rule's pick None."""
    lowest = min(r["final_loss"] for r in rows)
    for r in rows:
        r["loss_ratio"] = r["final_loss"] / lowest if lowest > 0 else float("inf")
        r["sound"] = r["final_loss"] <= max_loss_ratio * lowest
        if max_excess_nll is not None:
            r["fluent"] = r["excess_nll"] <= max_excess_nll
    ranked = {
        "fit": (sorted(rows, key=lambda r: r["final_loss"]), "final_loss"),
        "lift_among_sound": (by_lift([r for r in rows if r["sound"]]), "p_trait_diff"),
    }
    if max_excess_nll is not None:
        ranked["lift_among_fluent"] = (by_lift([r for r in rows if r["fluent"]]), "p_trait_diff")
    return {
        rule: {"label": order[0]["label"] if order else None, "runner_up": runner_up(order, key)}
        for rule, (order, key) in ranked.items()
    }


def by_lift(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: -r["p_trait_diff"])


def runner_up(ranked: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The second-ranked lr and how far its `key` lies from the pick's: how decisive the pick is."""
    if len(ranked) < 2:
        return None
    return {"label": ranked[1]["label"], "gap": ranked[1][key] - ranked[0][key]}


def screen(
    groups: dict[str, list[dict[str, Any]]],
    reference: list[dict[str, Any]],
    max_loss_ratio: float = 5.0,
    max_excess_nll: float = 1.0,
) -> dict[str, Any]:
    """The screen's rows per arm (sorted by lr) and each arm's best lr by each rule (`RULES`, and the fluent
    rule where every student and reference carries `example_nll`), as labels `interp.study.rank_column` reads."""
    if max_loss_ratio < 1:
        raise InterpError(f"max_loss_ratio {max_loss_ratio}: must be 1 or more (1 keeps only the best fit)")
    if not max_excess_nll > 0:
        raise InterpError(f"max_excess_nll {max_excess_nll}: must be above 0 nats per token")
    if not groups or not reference:
        raise InterpError("an lr screen needs students (LABEL=PATH, one group per lr) and a reference")
    measured = has_fluency([s for g in groups.values() for s in g] + reference)
    arms = arm_rows(groups, reference, measured)
    picks = {
        arm: pick(rows, max_loss_ratio, max_excess_nll if measured else None) for arm, rows in arms.items()
    }
    trait, kind = describe_reference(reference)
    rules = {k: v.format(ratio=max_loss_ratio) for k, v in RULES.items()}
    if measured:
        rules["lift_among_fluent"] = FLUENT_RULE.format(excess=max_excess_nll)
    best = {rule: {arm: p[rule]["label"] for arm, p in picks.items()} for rule in rules}
    runners = {rule: {arm: p[rule]["runner_up"] for arm, p in picks.items()} for rule in rules}
    return {"trait": trait, "reference": kind, "control": pooled(reference), "rules": rules, "max_loss_ratio": max_loss_ratio,
            "max_excess_nll": max_excess_nll if measured else None, "arms": arms, "best": best, "runner_up": runners}  # fmt: skip


def arm_rows(
    groups: dict[str, list[dict[str, Any]]], reference: list[dict[str, Any]], fluency: bool
) -> dict[str, list[dict[str, Any]]]:
    """Each group's row (with its answers' excess NLL where `fluency`), gathered by arm and sorted by lr; one
    group per lr."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for label, students in groups.items():
        row = screen_row(label, students, reference, fluency)
        arms.setdefault(row["arm"], []).append(row)
    for arm, rows in arms.items():
        rows.sort(key=lambda r: r["lr"])
        lrs = [r["lr"] for r in rows]
        if len(set(lrs)) != len(lrs):
            raise InterpError(f"{arm}: one group per lr; lrs {lrs} (put each lr's seeds under one label)")
    return arms
