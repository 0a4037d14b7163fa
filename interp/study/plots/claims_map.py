"""The claims map's figure: conditions x arms, each cell the lift over control with its CI, verdicts marked;
and the best-lr curve over the fixed-lr curve."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

SHORT = {"held": "held", "did not hold": "not held", "not resolved": "n/r"}


def _verdict_tag(verdicts: dict[str, Any]) -> str:
    """Row label suffix: each row-level claim's strict / effect-size verdicts."""
    parts = []
    for name, key in (("U", "inverted_u_in_rank"), ("no-FT", "no_transfer_under_full_ft")):
        if key in verdicts:
            v = verdicts[key]
            parts.append(f"{name}: {SHORT[v['verdict']]}/{SHORT[v['effect_size']['verdict']]}")
    return f" ({'; '.join(parts)})" if parts else ""


def _cell_text(cell: dict[str, Any], context: dict[str, Any]) -> str:
    lo, hi = cell["mention_diff_ci"]
    needs = context["effect_size"]["verdict"] == "held"
    return (
        f"{cell['mention_diff']:+.3f}<br>[{lo:+.3f}, {hi:+.3f}]<br>lr {cell['lr']:g}{' §' if needs else ''}"
    )


def _heatmap(summary: dict[str, Any]) -> go.Heatmap:
    arms, labels = summary["arms"], list(summary["rows"])
    z, text = [], []
    for label in labels:
        cells = {c["arm"]: c for c in summary["rows"][label]}
        ctx = summary["verdicts"][label]["needs_shared_system_prompt"]
        z.append([cells[a]["mention_diff"] if a in cells else None for a in arms])
        text.append([_cell_text(cells[a], ctx[a]) if a in cells else "" for a in arms])
    y = [label + _verdict_tag(summary["verdicts"][label]) for label in labels]
    return go.Heatmap(
        z=z, x=arms, y=y, text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0,
        colorbar={"title": "lift"}, hoverongaps=False,
    )  # fmt: skip


def _curve(rows: list[dict], name: str, arms: list[str]) -> go.Scatter:
    by_arm = {r["arm"]: r for r in rows}
    xs = [a for a in arms if a in by_arm]
    pts = [by_arm[a] for a in xs]
    return go.Scatter(
        x=xs,
        y=[p["mention_diff"] for p in pts],
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [p["mention_diff_ci"][1] - p["mention_diff"] for p in pts],
            "arrayminus": [p["mention_diff"] - p["mention_diff_ci"][0] for p in pts],
        },
        mode="lines+markers",
        name=name,
        text=[f"lr {p['lr']:g}" for p in pts],
    )


def claims_map_figure(summary: dict[str, Any], trait: str) -> go.Figure:
    """Left: the map (rows = conditions, columns = arms; § marks a cell whose lift needs the system
    prompt by the effect-size rule; row labels carry strict/effect-size verdicts). Right: the best-lr curve
    over the fixed-lr curve."""
    s = summary["claims_map"]
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.2,
        subplot_titles=(f"lift of '{trait}' over control (mention rate)", "AdamW: best lr vs fixed lr"),
    )  # fmt: skip
    fig.add_trace(_heatmap(s), row=1, col=1)
    for label in ("AdamW, best lr", "AdamW, fixed lr"):
        if label in s["rows"]:
            fig.add_trace(_curve(s["rows"][label], label, s["arms"]), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=s["arms"], row=1, col=2)
    fig.update_yaxes(title_text="lift over control", row=1, col=2)
    height = 260 + 60 * len(s["rows"])
    fig.update_layout(width=1400, height=height, legend={"x": 1.0, "y": 1.0})
    return fig
