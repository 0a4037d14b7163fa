"""The claims map's figure: conditions x arms, each cell the lift over control with its CI, verdicts marked;
and the best-lr curve over the fixed-lr curve."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

SHORT = {"held": "held", "did not hold": "not held", "not resolved": "unresolved"}
CLAIMS = (("inverted U", "inverted_u_in_rank"), ("no full-FT transfer", "no_transfer_under_full_ft"))


def _verdict_tag(verdicts: dict[str, Any], sep: str = "<br>") -> str:
    """The row-level claims' verdicts, strict / effect size, one claim per line."""
    parts = [
        f"{name}: {SHORT[verdicts[key]['verdict']]} / {SHORT[verdicts[key]['effect_size']['verdict']]}"
        for name, key in CLAIMS
        if key in verdicts
    ]
    return "".join(f"{sep}<sup>{p}</sup>" for p in parts)


def _cell_text(cell: dict[str, Any], context: dict[str, Any]) -> str:
    lo, hi = cell["mention_diff_ci"]
    needs = context["effect_size"]["verdict"] == "held"
    edge = f" ({cell['grid_edge']} of grid)" if cell.get("grid_edge") else ""
    return f"{cell['mention_diff']:+.3f}<br>[{lo:+.3f}, {hi:+.3f}]<br>lr {cell['lr']:g}{edge}{' §' if needs else ''}"


def _heatmap(summary: dict[str, Any]) -> go.Heatmap:
    arms, labels = summary["arms"], summary.get("row_order", list(summary["rows"]))
    z, text = [], []
    for label in labels:
        cells = {c["arm"]: c for c in summary["rows"][label]}
        ctx = summary["verdicts"][label]["needs_shared_system_prompt"]
        z.append([cells[a]["mention_diff"] if a in cells else None for a in arms])
        text.append([_cell_text(cells[a], ctx[a]) if a in cells else "" for a in arms])
    y = [label + _verdict_tag(summary["verdicts"][label]) for label in labels]
    return go.Heatmap(
        z=z, x=arms, y=y, text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0,
        colorbar={"title": "lift", "len": 0.9}, hoverongaps=False, textfont={"size": 11},
    )  # fmt: skip


def _curve(rows: list[dict], name: str, arms: list[str], verdicts: dict[str, Any]) -> go.Scatter:
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
        name=name + _verdict_tag(verdicts, sep=" "),
        text=[f"lr {p['lr']:g}" for p in pts],
    )


def claims_map_figure(summary: dict[str, Any], trait: str) -> go.Figure:
    """Left: the map (rows = conditions, columns = arms; § marks a cell whose lift needs the system
    prompt by the effect-size rule; row labels carry the verdicts, strict / effect size). Right: the best-lr
    curve over the fixed-lr curve, each with its verdicts; the colour bar sits between the panels and the
    curves' legend under them, so neither covers the other."""
    s = summary["claims_map"]
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.16,
        subplot_titles=(f"lift of '{trait}' over control (mention rate)", "AdamW: best lr vs fixed lr"),
    )  # fmt: skip
    fig.add_trace(_heatmap(s), row=1, col=1)
    fig.update_traces(colorbar_x=fig.layout.xaxis.domain[1] + 0.01, selector={"type": "heatmap"})
    for label in ("AdamW, best lr", "AdamW, fixed lr"):
        if label in s["rows"]:
            fig.add_trace(_curve(s["rows"][label], label, s["arms"], s["verdicts"][label]), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=s["arms"], row=1, col=2)
    fig.update_yaxes(title_text="lift over control", row=1, col=2)
    height = 300 + 70 * len(s["rows"])
    legend = {
        "x": fig.layout.xaxis2.domain[0], "xanchor": "left", "y": -0.06, "yanchor": "top",
        "title": {"text": "verdicts: strict / effect size"},
    }  # fmt: skip
    fig.add_annotation(
        text=f"row verdicts: strict rule / effect-size rule (effect fraction {s['effect_fraction']});"
        " § the cell's lift needs the system prompt (effect size)",
        xref="paper", yref="paper", x=0, y=-0.06, xanchor="left", yanchor="top", showarrow=False,
    )  # fmt: skip
    fig.update_layout(width=1400, height=height, legend=legend, margin={"b": 140})
    return fig
