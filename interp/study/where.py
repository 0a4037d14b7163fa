"""Where the shift lives: restricted LoRA and set patching side by side, on one scale (0 = base, 1 = student).

Rows are claim 4's position sets (`interp.mech.positions.SHIFT_SETS`), columns the methods: the adapter
only at S / everywhere except S (`interp.stages.restrict_adapter`), and S patched whole by denoising /
noising (`interp.mech.sets`). Every cell is the fraction of the student's shift the model shows with S set
that way: denoising's is the shift recovered, noising's the shift left after the patch. "Only" and
"denoise" ask whether S suffices (yes where high); "except" and "noise" whether S is needed (yes where
low). `disagreements` names the cells where two methods asking the same question have disjoint CIs.
"""

from __future__ import annotations

from typing import Any

from interp.mech.results import FRACTION_NAMES, RECIPIENT_SCALE, LocalizationResult
from interp.mech.sets import READOUT, SHIFT_SETS
from interp.study.plots.heatmaps import visible
from interp.study.plots.where import fraction_label

Block = tuple

ALL = "all positions"
FIGURE = "where_the_shift_lives"
PAIRS = (("only", "denoise", "suffices"), ("except", "noise", "is needed"))
WHY = (
    "The methods answer different questions: restricted LoRA gives S the student's weights in the base's "
    "context (the rest of the prompt is the base's), while a patch gives S the student's activations, "
    "computed attending to the student's own earlier positions. They part where the student's computation "
    "at S depends on what it computed elsewhere (attention from S to shifted earlier positions), or where "
    "the shift at S is spread over positions that one rule switches together. Restricted LoRA is read over "
    "every evaluation question, patching over the first N of them; and patching the readout whole gives the "
    "student's whole residual stream there, so it is 1 (denoising) or 0 (noising) wherever the student's "
    "final norm and unembedding are the base's."
)
BY_CONSTRUCTION = (
    "Patching the readout whole (or every position, the same thing for a metric read at the readout) gives "
    "the recipient the donor's whole residual stream there, so it is 1 (denoising) and 0 (noising) by "
    "construction wherever the student's final norm and unembedding are the base's, as with a LoRA student; "
    "there only restricted LoRA is informative. A full-FT student's final norm and unembedding changed too "
    "and are not patched, so there it falls short of 1 (and above 0), by the part of the shift that they "
    "carry."
)


def where_table(localization: dict[str, Any] | None, sets: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per position set (and "all positions"): recovered fraction and CI by each method that ran."""
    restricted = {}
    for row in (localization or {}).get("localization", []):
        if row.get("set"):
            restricted[(row["mode"], row["set"])] = {
                "recovered_fraction": row["recovered_fraction"],
                "ci": row["ci"],
            }
    rows = []
    for name in [*SHIFT_SETS, ALL]:
        row: dict[str, Any] = {"set": name}
        for mode in ("only", "except"):
            row[mode] = restricted.get((mode, name))
        for direction in ("denoise", "noise"):
            row[direction] = sets.get(direction, {}).get(name)
        rows.append(row)
    return rows


MIN_GAP = 0.1  # a difference smaller than this is not called a disagreement, however tight the CIs


def _apart(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Disjoint 95% CIs and point estimates at least MIN_GAP apart."""
    if not a or not b or a.get("recovered_fraction") is None or b.get("recovered_fraction") is None:
        return False
    disjoint = a["ci"][0] > b["ci"][1] or b["ci"][0] > a["ci"][1]
    return disjoint and abs(a["recovered_fraction"] - b["recovered_fraction"]) >= MIN_GAP


def disagreements(rows: list[dict[str, Any]]) -> list[str]:
    """Plain sentences for every set where restricted LoRA and patching disagree (disjoint 95% CIs, point
    estimates at least MIN_GAP apart). The readout is left out: restricted LoRA runs on LoRA students only,
    whose readout patch is 1 or 0 by construction (`BY_CONSTRUCTION`), so a gap there says nothing."""
    out = []
    for row in rows:
        if row["set"] == READOUT:
            continue
        for lora, patch, question in PAIRS:
            a, b = row.get(lora), row.get(patch)
            if _apart(a, b):
                out.append(f"whether {row['set']} {question}: adapter {lora} {_fmt(a)} vs {patch} {_fmt(b)}")
    return out


QUESTIONS = {"only": "suffices", "denoise": "suffices", "except": "is needed", "noise": "is needed"}
"""The question each where-table column answers (`PAIRS`): a "suffices" column says yes where high, an
"is needed" column where low."""


def carriers(rows: list[dict[str, Any]], method: str, threshold: float = 0.5) -> list[str]:
    """The sets that `method`'s column answers yes for, with the whole CI past `threshold`: a "suffices"
    column (only, denoise) where the set alone recovers more than `threshold` of the shift (CI lower bound),
    an "is needed" column (except, noise) where the shift without it falls below `threshold` (CI upper
    bound)."""
    needed = QUESTIONS[method] == "is needed"
    return [
        r["set"]
        for r in rows
        if r["set"] != ALL
        and r.get(method)
        and r[method].get("recovered_fraction") is not None
        and (r[method]["ci"][1] < threshold if needed else r[method]["ci"][0] > threshold)
    ]


def seed_agreement(tables: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per column of the where table: the sets each student's table answers yes for (`carriers`), and those
    every student that ran the method answers yes for. Students are seeds or arms, one table each."""
    out = []
    for method, question in QUESTIONS.items():
        ran = {name: rows for name, rows in tables.items() if any(r.get(method) for r in rows)}
        if not ran:
            continue
        found = {name: carriers(rows, method) for name, rows in ran.items()}
        every = [s for s in next(iter(found.values())) if all(s in v for v in found.values())]
        out.append({"method": method, "question": question, "by_student": found, "every_student": every})
    return out


def _fmt(cell: dict[str, Any]) -> str:
    lo, hi = cell["ci"]
    return f"{cell['recovered_fraction']:.2f} [{lo:.2f}, {hi:.2f}]"


def grid_caption(result: LocalizationResult) -> str:
    """One sentence on what a patching grid shows: the cell that moves the metric most, where the strong
    cells lie, and its structural no-ops. On the student scale a noising cell's effect is 1 - its value
    (the shift it removes), so there the strong cells are those that leave under half the shift."""
    direction = result.config.get("direction")
    on_scale = result.scale != RECIPIENT_SCALE and direction in FRACTION_NAMES
    noise = on_scale and direction == "noise"
    effect = (1 - result.scores if noise else result.scores).nan_to_num(0.0)
    if not effect.abs().max() > 0:
        return "No cell moves the metric (the two runs agree, or every patch is a no-op)."
    flat = int(effect.abs().argmax())
    i, j = divmod(flat, effect.shape[1])
    row = f"head {result.layers[i]}" if result.kind == "head_aligned" else f"layer {result.layers[i]}"
    cls = f" ({result.col_classes[j]})" if result.col_classes else ""
    reads = f"{FRACTION_NAMES[direction]} " if on_scale else ""
    text = (
        f"The cell that moves the metric most is {row} at '{visible(result.col_labels[j])}'{cls}: "
        f"{reads}{float(result.scores[i, j]):.2f}"
    )
    if result.spread is not None:
        text += f" (sd {float(result.spread[i, j]):.2f} across {result.config.get('n_present', ['?'] * (j + 1))[j]} prompts)"
    strong = (
        sorted({result.col_classes[c] for c in (effect > 0.5).nonzero()[:, 1].tolist()})
        if result.col_classes
        else []
    )
    which = "cells that leave under 0.5 of the shift" if noise else "cells above 0.5"
    text += (
        f"; {which} lie at {', '.join(strong)}." if strong else f"; no cell moves it by 0.5 ({which}: none)."
    )
    if result.identical is not None and bool(result.identical.any()):
        rows = sorted({result.layers[r] for r in result.identical.nonzero()[:, 0].tolist()})
        text += (
            f" Cells marked ≡ (layer {', '.join(map(str, rows))}) are structural no-ops: the two models' "
            "activations are identical there."
        )
    return text


def short_of_one(rows: list[dict[str, Any]]) -> float | None:
    """The fraction that patching every position recovers by denoising, where it falls short of 1 (None
    where it is 1, or did not run)."""
    cell = next((r.get("denoise") for r in rows if r["set"] == ALL), None)
    x = (cell or {}).get("recovered_fraction")
    return x if x is not None and abs(x - 1) > 0.005 else None


def beyond_the_stream(x: float, reference: str = "base") -> str:
    """Why every position patched recovers `x` and not 1: the rest comes from what set patching leaves the
    recipient's, the final norm and unembedding (a full-FT student's changed with its blocks; a LoRA
    student's did not)."""
    return (
        f"Patching every position recovers {x:.2f}, not 1: the other {1 - x:.2f} comes from the student's "
        f"final norm and unembedding, which set patching leaves the {reference}'s"
    )


def _frac(r: dict[str, Any] | None) -> str:
    """A recovered fraction with its CI, as a report cell ("n/a" where the method did not run)."""
    if not r or r.get("recovered_fraction") is None:
        return "n/a"
    return _fmt(r)


def carrier_text(res: dict[str, Any]) -> str:
    """Claim 4 in the position sets' terms: each set alone, and the layers and modules at the carrier."""
    rows = res["localization"]
    none = (
        " The default system prompt names no entity (no rule reads one, and no --entity was given): the "
        "entity set is empty, so its rows measure nothing."
        if "entity" in res and res["entity"] is None
        else ""
    )
    sets = sorted(
        (r for r in rows if r.get("set") and r["mode"] == "only"),
        key=lambda r: -(r["recovered_fraction"] or 0),
    )
    but = {r["set"]: r for r in rows if r.get("set") and r["mode"] == "except"}
    carrier = res.get("carrier")
    if not sets or carrier is None:
        return none
    text = none + (
        " Where it lives, by disjoint position sets that cover the prompt (adapter only there; everywhere "
        "except there): "
        + "; ".join(f"{r['set']} {_frac(r)} / {_frac(but.get(r['set']))}" for r in sets)
        + f". The positions that carry the shift are the **{carrier}**"
    )
    at = [r for r in rows if not r.get("set")]
    if at:
        text += ", where, with the adapter there only, " + "; ".join(
            f"{r['positions'].split(', ', 1)[-1]} recovers {_frac(r)}" for r in at
        )
    return text + "."


def where_metric(res: dict[str, Any]) -> tuple[str, str]:
    """(metric, reference) that the where table reads, e.g. ("P(wolf)", "base"): from the patching
    results, else from a run's set fractions."""
    sets = next((r.get("sets") for r in res.get("runs", {}).values() if r.get("sets")), None) or {}
    return res.get("metric") or sets.get("metric") or "P(trait)", res.get("reference") or "base"


def where_blocks(res: dict[str, Any]) -> list[Block]:
    """The "where the shift lives" table and figure: restricted LoRA beside set patching, with where they
    disagree and why."""
    blocks: list[Block] = [("h2", "Where the shift lives - restricted LoRA and patching side by side")]
    n = res.get("n_prompts")
    metric, ref = where_metric(res)
    intro = (
        "Rows: disjoint position sets S that cover the prompt (the readout is the last prompt position, where "
        "the answer's first token is read). Columns: the adapter only at S / everywhere except S (restricted "
        f"LoRA), and S patched whole, embedding and every block output, by denoising (student into {ref}) / "
        f"noising ({ref} into student) over N = {n} prompts. Cells, in every column: the "
        f"{fraction_label(metric, ref)} [95% bootstrap CI], {metric} read at the answer's first token; that "
        f"is, how much of the student's shift the model shows with S set that way. Denoising's cell is the "
        f"{FRACTION_NAMES['denoise']}, noising's the "
        f"{FRACTION_NAMES['noise']} after the {ref}'s activations replace the student's at S. 'only' and "
        "'denoise' ask whether S suffices (yes where high), 'except' and 'noise' whether S is needed (yes "
        f"where low). {BY_CONSTRUCTION} For the other sets a patch asks whether the student's activations "
        "there, read by the recipient's computation at the readout, carry the shift."
    )
    blocks.append(("p", intro))
    header = [
        "S",
        "adapter only at S",
        f"denoise S ({FRACTION_NAMES['denoise']})",
        "adapter except S",
        f"noise S ({FRACTION_NAMES['noise']})",
    ]
    for name, rows in res.get("where", {}).items():
        table = [[r["set"]] + [_frac(r.get(k)) for k in ("only", "denoise", "except", "noise")] for r in rows]
        blocks.append(("p", f"**{name}**"))
        blocks.append(("table", header, table))
        found = {m: carriers(rows, m) for m in ("only", "denoise")}
        text = "Sets that alone recover more than half of the shift (CI lower bound > 0.5): " + "; ".join(
            f"by {m}: {', '.join(v) or 'none'}" for m, v in found.items() if any(r.get(m) for r in rows)
        )
        apart = disagreements(rows)
        text += (
            ". The methods disagree on " + "; ".join(apart) + ". " + WHY
            if apart
            else ". Where both ran, the methods agree (no two CIs disjoint by 0.1 or more)."
        )
        if any(r.get("only") or r.get("except") for r in rows):
            text += " The readout is not compared: a LoRA student's readout patch is 1 or 0 by construction."
        gap = short_of_one(rows)
        text += f" {beyond_the_stream(gap, ref)}." if gap is not None else ""
        blocks.append(("p", text))
    return blocks + [("fig", FIGURE)] if "where" in res else blocks


def patching_blocks(res: dict[str, Any]) -> list[Block]:
    if not res:
        return []
    blocks = where_blocks(res)
    blocks += [
        ("h2", "Activation patching by layer and position"),
        (
            "p",
            "Exact activation patching of resid_pre, attn_out and mlp_out at each (layer, position), by "
            f"denoising (student into base: the {FRACTION_NAMES['denoise']}) and noising (base into student: "
            f"the {FRACTION_NAMES['noise']}), both on the scale 0 = base, 1 = student, so a noising cell "
            "that the shift needs is low and a no-op patch is 1; metric log P(trait first token) at the "
            "readout. Positions are pooled over "
            f"N = {res.get('n_prompts')} prompts aligned by token class and index within the class (never by "
            "padded index); hover a cell for its spread across prompts. Then head x position at the layers "
            "whose attn_out moves the metric most, and attribution patching against exact patching.",
        ),
    ]
    captions = {k: v for run in res.get("runs", {}).values() for k, v in run.get("captions", {}).items()}
    for label, run in res.get("runs", {}).items():
        agree = (run.get("attribution_agreement") or {}).get("denoise") or {}
        if agree:
            blocks.append(
                (
                    "p",
                    f"{run.get('student', label)}: attribution vs exact patching (denoising), Pearson r by site: "
                    + ", ".join(f"{site} {a['pearson']:.2f}" for site, a in agree.items())
                    + ".",
                )
            )
    for name in res.get("figures", []):
        if name == FIGURE:
            continue
        blocks.append(("fig", name))
        if name in captions:
            blocks.append(("p", captions[name]))
    return blocks
