"""Where the shift lives: restricted LoRA and set patching side by side, on one scale (0 = base, 1 = student).

Rows are claim 4's position sets (`interp.mech.positions.SHIFT_SETS`), columns the methods: the adapter
only at S / everywhere except S (`experiments.restrict_adapter`), and S patched whole by denoising /
noising (`interp.mech.sets`). "Only" and "denoise" ask whether S suffices; "except" and "noise" whether S
is needed. `disagreements` names the cells where two methods asking the same question have disjoint CIs.
"""

from __future__ import annotations

from typing import Any

from interp.mech.positions import SHIFT_SETS
from interp.mech.results import LocalizationResult

ALL = "all positions"
PAIRS = (("only", "denoise", "suffices"), ("except", "noise", "is needed"))
WHY = (
    "The methods answer different questions: restricted LoRA gives S the student's weights in the base's "
    "context (the rest of the prompt is the base's), while a patch gives S the student's activations, "
    "computed attending to the student's own earlier positions. They part where the student's computation "
    "at S depends on what it computed elsewhere (attention from S to shifted earlier positions), or where "
    "the shift at S is spread over positions that one rule switches together. Restricted LoRA is read over "
    "every evaluation question, patching over the first N of them."
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


def _apart(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if not a or not b or a.get("recovered_fraction") is None or b.get("recovered_fraction") is None:
        return False
    return a["ci"][0] > b["ci"][1] or b["ci"][0] > a["ci"][1]


def disagreements(rows: list[dict[str, Any]]) -> list[str]:
    """Plain sentences for every set where restricted LoRA and patching disagree (disjoint 95% CIs)."""
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
    text = f"The largest cell is {row} at '{result.col_labels[j].replace('Ġ', ' ')}'{cls}: {float(scores[i, j]):.2f}"
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
