"""The ladder's report: one table, rung x arm, each lift with its CI over seeds and questions and the
minimum detectable lift beside it, and a sentence on which rung transfers first, by which metric."""

from __future__ import annotations

from typing import Any


def ci_text(lo_hi: list[float], fmt: str) -> str:
    """A 95% CI as [lo, hi] in `fmt`."""
    return f"[{lo_hi[0]:{fmt}}, {lo_hi[1]:{fmt}}]"


def lift_text(value: float, lo_hi: list[float], digits: int) -> str:
    """A signed lift and its 95% CI, as the reports write them: +0.0387 [0.0324, 0.0462]."""
    return f"{value:+.{digits}f} {ci_text(lo_hi, f'.{digits}f')}"


def fraction_text(frac: list | None, missing: str = "-") -> str:
    """A lift's fraction of another, point [lo, hi] to two decimals; `missing` where it is undefined."""
    if frac is None or None in frac:
        return missing
    return f"{frac[0]:.2f} {ci_text(frac[1:], '.2f')}"


def _mde(row: dict[str, Any], metric: str, fmt: str) -> str:
    """The MDE, marked ">=" where it is a floor (the seed spread unknown)."""
    return f"{'>=' if row.get(f'{metric}_mde_is_floor') else ''}{row[f'{metric}_mde']:{fmt}}"


def _seed(row: dict[str, Any], metric: str, fmt: str) -> str:
    """The verdict, and the CI with the seed spread in it where that spread is measured."""
    seed_ci = row.get(f"{metric}_seed_ci")
    with_seeds = f"; with the seed spread {ci_text(seed_ci, fmt)}" if seed_ci else ""
    return f" ({row[f'{metric}_verdict']}{with_seeds})"


def ladder_table(summary: dict[str, Any]) -> str:
    """The markdown table of a ladder's results.json."""
    head = (
        "| rung | arm (lr) | seeds: student / control | P(trait) student / control | P(trait) lift [95% CI] "
        "| P(trait) MDE | mention-rate lift [95% CI] | mention MDE |\n|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for r in summary["rows"]:
        p = f"{r['p_trait_diff']:+.4f} {ci_text(r['p_trait_diff_ci'], '.4f')}{_seed(r, 'p_trait', '.4f')}"
        m = f"{r['mention_diff']:+.3f} {ci_text(r['mention_diff_ci'], '.3f')}{_seed(r, 'mention', '.3f')}"
        rows.append(
            f"| {r['rung']} | {r['arm']} ({r['lr']:g}) | {r['seeds']} / {r['control_seeds']} "
            f"| {r['student']['p_trait']:.4f} / {r['control']['p_trait']:.4f} | {p} | {_mde(r, 'p_trait', '.4f')} "
            f"| {m} | {_mde(r, 'mention', '.3f')} |"
        )
    return "\n".join([head, *rows])


def first_transfer(summary: dict[str, Any]) -> str:
    """Which rung transfers first (the ladder's order), and by which metric; or that none does."""
    for r in summary["rows"]:
        metrics = [
            m for m, k in (("P(trait)", "p_trait_transfers"), ("mention rate", "mention_transfers")) if r[k]
        ]
        if metrics:
            return f"The first rung that transfers is {r['rung']} ({r['arm']}), by {' and '.join(metrics)}."
    return (
        "No rung transfers: no lift clears both its CI over questions and the seed spread; read each null "
        "against its MDE."
    )


TRAINED_WITHOUT_PROMPT = (
    " Students trained under no system prompt (claim 3's training row); the table reads them evaluated "
    "under the default prompt."
)


def ladder_markdown(summary: dict[str, Any], power: str, check: dict[str, Any] | None) -> str:
    """report.md: the power, the table, the first transfer, the pending cells and the distillation check."""
    parts = [
        "# Positive-control ladder",
        "",
        "Each rung is read against a control trained the same way on the control teacher's output. "
        f"Base P(trait) {summary['base']['p_trait']:.4f}, mention rate {summary['base']['mention_rate']:.3f}."
        + TRAINED_WITHOUT_PROMPT
        * (summary.get("train_system") == "none"),
        "",
        "```",
        power,
        "```",
        "",
        ladder_table(summary),
        "",
        first_transfer(summary),
    ]
    based = [f"{r['rung']} ({r['arm']})" for r in summary["rows"] if r["control_jobs"][0].startswith("base")]
    if based:
        parts += [
            "",
            f"Read against the base, which their distillation control is bit for bit: {', '.join(based)}.",
        ]
    if summary.get("pending"):
        parts += ["", f"Pending (not finished yet): {', '.join(summary['pending'])}."]
    if check:
        moved = ", ".join(
            f"{checked_arm(a, v)} lr {v['lr']:g}: {v['max_abs_weight_change']:g}" for a, v in check.items()
        )
        parts += [
            "",
            f"Distillation control on this model, largest weight change after one short epoch: {moved}.",
        ]
    return "\n".join(parts) + "\n"


def checked_arm(arm: str, check: dict) -> str:
    """An arm of the distillation-control check, with the LoRA rank it ran at where recorded."""
    return f"{arm} r{check['rank']}" if "rank" in check else arm
