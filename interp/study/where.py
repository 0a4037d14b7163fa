"""Where the shift lives: restricted LoRA and set patching side by side, on one scale (0 = base, 1 = student).

Rows are claim 4's position sets (`interp.mech.positions.SHIFT_SETS`), columns the methods: the adapter
only at S / everywhere except S (`interp.stages.restrict_adapter`), and S patched whole by denoising /
noising (`interp.mech.sets`). "Only" and "denoise" ask whether S suffices; "except" and "noise" whether S
is needed. `disagreements` names the cells where two methods asking the same question have disjoint CIs.
"""

from __future__ import annotations

from typing import Any

from interp.mech.results import LocalizationResult
from interp.mech.sets import SHIFT_SETS
from interp.study.plots.heatmaps import visible

Block = tuple

ALL = "all positions"
PAIRS = (("only", "denoise", "suffices"), ("except", "noise", "is needed"))
WHY = (
    "The methods answer different questions: restricted LoRA gives S the student's weights in the base's "
    "context (the rest of the prompt is the base's), while a patch gives S the student's activations, "
    "computed attending to the student's own earlier positions. They part where the student's computation "
    "at S depends on what it computed elsewhere (attention from S to shifted earlier positions), or where "
    "the shift at S is spread over positions that one rule switches together. Restricted LoRA is read over "
    "every evaluation question, patching over the first N of them; and patching the readout whole is 1 "
    "(denoising) or 0 (noising) by construction."
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
    estimates at least MIN_GAP apart)."""
    out = []
    for row in rows:
        for lora, patch, question in PAIRS:
            a, b = row.get(lora), row.get(patch)
            if _apart(a, b):
                out.append(f"whether {row['set']} {question}: adapter {lora} {_fmt(a)} vs {patch} {_fmt(b)}")
    return out


def carriers(rows: list[dict[str, Any]], method: str, threshold: float = 0.5) -> list[str]:
    """The sets that alone recover more than `threshold` of the shift by `method` (CI lower bound)."""
    return [
        r["set"]
        for r in rows
        if r["set"] != ALL
        and r.get(method)
        and r[method].get("recovered_fraction") is not None
        and r[method]["ci"][0] > threshold
    ]


def _fmt(cell: dict[str, Any]) -> str:
    lo, hi = cell["ci"]
    return f"{cell['recovered_fraction']:.2f} [{lo:.2f}, {hi:.2f}]"


def grid_caption(result: LocalizationResult) -> str:
    """One sentence on what a patching grid shows: its largest cell, where its strong cells lie, and its
    structural zeros."""
    scores = result.scores.nan_to_num(0.0)
    if not scores.abs().max() > 0:
        return "No cell moves the metric (the two runs agree, or every patch is a no-op)."
    flat = int(scores.abs().argmax())
    i, j = divmod(flat, scores.shape[1])
    row = f"head {result.layers[i]}" if result.kind == "head_aligned" else f"layer {result.layers[i]}"
    cls = f" ({result.col_classes[j]})" if result.col_classes else ""
    text = f"The largest cell is {row} at '{visible(result.col_labels[j])}'{cls}: {float(scores[i, j]):.2f}"
    if result.spread is not None:
        text += f" (sd {float(result.spread[i, j]):.2f} across {result.config.get('n_present', ['?'] * (j + 1))[j]} prompts)"
    strong = (
        sorted({result.col_classes[c] for c in (scores > 0.5).nonzero()[:, 1].tolist()})
        if result.col_classes
        else []
    )
    text += f"; cells above 0.5 lie at {', '.join(strong)}." if strong else "; no cell reaches 0.5."
    if result.identical is not None and bool(result.identical.any()):
        rows = sorted({result.layers[r] for r in result.identical.nonzero()[:, 0].tolist()})
        text += f" Cells marked ≡ (layer {', '.join(map(str, rows))}) are structural zeros: the two models' activations are identical there."
    return text


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


def where_blocks(res: dict[str, Any]) -> list[Block]:
    """The "where the shift lives" table and figure: restricted LoRA beside set patching, with where they
    disagree and why."""
    blocks: list[Block] = [("h2", "Where the shift lives - restricted LoRA and patching side by side")]
    n = res.get("n_prompts")
    intro = (
        "Rows: disjoint position sets S that cover the prompt (the readout is the last prompt position, where "
        "the answer's first token is read). Columns: the adapter only at S / everywhere except S (restricted "
        f"LoRA), and S patched whole, embedding and every block output, by denoising (student into base) / "
        f"noising (base into student) over N = {n} prompts. Cells: recovered fraction of the student's "
        "first-token P(trait), 0 = base, 1 = student, [95% bootstrap CI]; 'only' and 'denoise' ask whether S "
        "suffices, 'except' and 'noise' whether S is needed. Patching the readout whole is 1 (denoising) and 0 "
        "(noising) by construction, since its whole residual stream is then the donor's: there only restricted "
        "LoRA is informative; for the other sets a patch asks whether the student's activations there, read by "
        "the recipient's computation at the readout, carry the shift."
    )
    blocks.append(("p", intro))
    for name, rows in res.get("where", {}).items():
        table = [[r["set"]] + [_frac(r.get(k)) for k in ("only", "denoise", "except", "noise")] for r in rows]
        blocks.append(("p", f"**{name}**"))
        blocks.append(
            ("table", ["S", "adapter only at S", "denoise S", "adapter except S", "noise S"], table)
        )
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
        blocks.append(("p", text))
    return blocks + [("fig", "where_the_shift_lives")] if "where" in res else blocks


def patching_blocks(res: dict[str, Any]) -> list[Block]:
    if not res:
        return []
    blocks = where_blocks(res)
    blocks += [
        ("h2", "Activation patching by layer and position"),
        (
            "p",
            "Exact activation patching of resid_pre, attn_out and mlp_out at each (layer, position), by "
            "denoising (student into base: 0 = base, 1 = student) and noising (base into student: 0 = student, "
            "1 = base); metric log P(trait first token) at the readout. Positions are pooled over "
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
        if name == "where_the_shift_lives":
            continue
        blocks.append(("fig", name))
        if name in captions:
            blocks.append(("p", captions[name]))
    return blocks
