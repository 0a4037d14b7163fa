"""Claim 4's summary figures: where the shift lives by method, and attribution against exact patching."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.mech.attribution import agreement
from interp.mech.results import LocalizationResult

# Columns of the summary: (key in a where-table row, header). Rows of the table come from
# `interp.study.where.where_table`.
METHODS = (
    ("only", "adapter only at S"),
    ("denoise", "denoise S<br>(student → base)"),
    ("except", "adapter except S"),
    ("noise", "noise S<br>(base → student)"),
)


def _cell(cell: dict[str, Any] | None) -> tuple[float | None, str]:
    if not cell or cell.get("recovered_fraction") is None:
        return None, "n/a"
    lo, hi = cell["ci"]
    return cell["recovered_fraction"], f"{cell['recovered_fraction']:.2f}<br>[{lo:.2f}, {hi:.2f}]"


def _panel(rows: list[dict[str, Any]]) -> go.Heatmap:
    z, text = [], []
    for row in rows:
        cells = [_cell(row.get(key)) for key, _ in METHODS]
        z.append([v for v, _ in cells])
        text.append([t for _, t in cells])
    return go.Heatmap(
        z=z,
        x=[h for _, h in METHODS],
        y=[r["set"] for r in rows],
        text=text,
        texttemplate="%{text}",
        colorscale="RdBu",
        zmid=0.0,
        zmin=-0.25,
        zmax=1.25,
        colorbar={"title": {"text": "recovered fraction of P(trait)<br>0 = base, 1 = student"}},
        hoverinfo="text",
    )


def where_figure(tables: dict[str, list[dict[str, Any]]], title: str) -> go.Figure:
    """One panel per student (e.g. "LoRA r16, lr 0.003, seed 0", "full FT, ..."): rows are position sets,
    columns methods, cells the recovered fraction [95% CI] on the scale 0 = base, 1 = student."""
    names = list(tables)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.2)
    for i, name in enumerate(names, start=1):
        panel = _panel(tables[name])
        panel.showscale = i == len(names)
        fig.add_trace(panel, row=1, col=i)
        fig.update_yaxes(autorange="reversed", row=1, col=i)
    fig.update_layout(
        title={"text": title},
        width=560 * len(names) + 220,
        height=560,
        template="plotly_white",
        margin={"t": 120},
    )
    return fig


def attribution_scatter(
    pairs: list[tuple[LocalizationResult, LocalizationResult, str]], title: str
) -> go.Figure:
    """Every cell's exact patching score against its attribution estimate, one colour per site, with each
    site's Pearson r in its legend entry; the diagonal is perfect agreement."""
    fig = go.Figure()
    lo, hi = 0.0, 1.0
    for exact, approx, site in pairs:
        x, y = exact.scores.flatten(), approx.scores.flatten()
        r = agreement(exact, approx)["pearson"]
        fig.add_trace(go.Scatter(x=x.tolist(), y=y.tolist(), mode="markers", name=f"{site} (r = {r:.2f})"))
        finite = [v for v in x.tolist() + y.tolist() if v == v]
        lo, hi = min([lo, *finite]), max([hi, *finite])
    fig.add_trace(
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash", "color": "gray"}, name="y = x")
    )
    fig.update_layout(
        title={"text": title},
        xaxis_title="exact patching score (0 = recipient, 1 = donor)",
        yaxis_title="attribution estimate",
        width=700,
        height=560,
        template="plotly_white",
        margin={"t": 110},
    )
    return fig
