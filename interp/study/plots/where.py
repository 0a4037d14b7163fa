"""Claim 4's summary figures: where the shift lives by method, and attribution against exact patching."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.mech.attribution import agreement
from interp.mech.results import FRACTION_NAMES, LocalizationResult, student_scale

# Columns of the summary: (key in a where-table row, header). Rows of the table come from
# `interp.study.where.where_table`. Every column is on one scale (0 = reference, 1 = student), so a colour
# means the same in all four: how much of the student's shift the model shows with S set that way. The
# header says which end answers the column's question.
METHODS = (
    ("only", "adapter only at S<br>(S suffices: high)"),
    ("denoise", f"denoise S: {FRACTION_NAMES['denoise']}<br>(S suffices: high)"),
    ("except", "adapter except S<br>(S is needed: low)"),
    ("noise", f"noise S: {FRACTION_NAMES['noise']}<br>(S is needed: low)"),
)


def fraction_label(metric: str, reference: str = "base") -> str:
    """What every cell of the where table and figure reads: the fraction of the student's shift in `metric`
    (e.g. "P(wolf)", at the answer's first token), on the scale of every recovered fraction."""
    return f"fraction of the student's shift in {metric}, {student_scale(reference)}"


def _cell(cell: dict[str, Any] | None) -> tuple[float | None, str]:
    if not cell or cell.get("recovered_fraction") is None:
        return None, "n/a"
    lo, hi = cell["ci"]
    return cell["recovered_fraction"], f"{cell['recovered_fraction']:.2f}<br>[{lo:.2f}, {hi:.2f}]"


def _panel(rows: list[dict[str, Any]], metric: str, reference: str, bound: float) -> go.Heatmap:
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
        zmin=-bound,  # symmetric about 0, so white is the reference and blue the student in every column
        zmax=bound,
        colorbar={
            "title": {
                "text": f"{metric}:<br>fraction of the<br>student's shift<br>{student_scale(reference)}"
            }
        },
        hoverinfo="text",
    )


def _bound(tables: dict[str, list[dict[str, Any]]]) -> float:
    """The colour range's half-width: the largest |fraction| drawn, and at least 1 (the whole shift)."""
    values = [
        abs(c["recovered_fraction"])
        for rows in tables.values()
        for row in rows
        for c in (row.get(k) for k, _ in METHODS)
        if c and c.get("recovered_fraction") is not None
    ]
    return max([1.0, *values])


TITLE_LINE = 24
"""Pixels per line of a where figure's title block (the title, then one line per note)."""


def where_figure(
    tables: dict[str, list[dict[str, Any]]],
    title: str,
    metric: str = "P(trait)",
    reference: str = "base",
    notes: list[str] | tuple[str, ...] = (),
) -> go.Figure:
    """One panel per student, two a row (e.g. "LoRA r16, lr 0.003, seed 0", "full FT, ..."): rows are position sets,
    columns methods, cells the fraction of the student's shift in `metric` [95% CI] on the scale
    0 = `reference`, 1 = student, in every column (noising's column is the shift left). The title names
    the same metric and scale as the colour bar; `notes` go under it."""
    names = list(tables)
    bound = _bound(tables)
    cols = min(2, len(names))  # two panels a row, so four students (two seeds of two arms) stay legible
    rows = -(-len(names) // cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.2, vertical_spacing=0.3 / rows
    )
    for i, name in enumerate(names):
        panel = _panel(tables[name], metric, reference, bound)
        panel.showscale = i == len(names) - 1
        fig.add_trace(panel, row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(autorange="reversed", row=i // cols + 1, col=i % cols + 1)
    lines = [
        f"cells: {fraction_label(metric, reference)} [95% CI]; in every column blue = as the student, "
        f"white = as the {reference}",
        *notes,
    ]
    head = TITLE_LINE * (1 + len(lines)) + 60  # the title block, then room for the first panels' titles
    fig.update_layout(
        # anchored at the top, so that the notes grow down into the margin sized for them, not into the panels
        title={
            "text": title + "".join(f"<br><sup>{line}</sup>" for line in lines),
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 16},
        },
        width=560 * cols + 220,
        height=560 * rows + head,
        template="plotly_white",
        margin={"t": head},
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
        xaxis_title=f"exact patching score ({pairs[0][0].scale if pairs else 'normalised'})",
        yaxis_title="attribution estimate",
        width=700,
        height=560,
        template="plotly_white",
        margin={"t": 110},
    )
    return fig
