"""The claims map's figure: conditions x arms, each cell the lift over control with its CI, verdicts marked;
and the best-lr points beside the fixed-lr points, one pair per arm.

Every map is drawn on one fixed, symmetric colour scale (`LIFT_RANGE`), so that two maps (two organisms,
or an organism and a real model) can be compared by colour."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

LIFT_RANGE = 0.7  # the colour scale runs from -LIFT_RANGE to +LIFT_RANGE on every map; larger lifts saturate
FONT = 13  # every text in the figure is at least this size (px), verdicts included
SHORT = {"held": "held", "did not hold": "not held", "not resolved": "unresolved"}
CLAIMS = (("inverted U", "inverted_u_in_rank"), ("no full-FT transfer", "no_transfer_under_full_ft"))


def _verdict_tag(verdicts: dict[str, Any], sep: str = "<br>") -> str:
    """The row-level claims' verdicts, strict / effect size, one claim per line."""
    parts = [
        f"{name}: {SHORT[verdicts[key]['verdict']]} / {SHORT[verdicts[key]['effect_size']['verdict']]}"
        for name, key in CLAIMS
        if key in verdicts
    ]
    return "".join(f"{sep}{p}" for p in parts)


def needs_prompt(context: dict[str, Any]) -> bool:
    """Whether a cell is marked §: its lift needs the system prompt by the effect-size rule."""
    return context["effect_size"]["verdict"] == "held"


def _cell_text(cell: dict[str, Any], context: dict[str, Any]) -> str:
    lo, hi = cell["mention_diff_ci"]
    edge = f" ({cell['grid_edge']} of grid)" if cell.get("grid_edge") else ""
    mark = " §" if needs_prompt(context) else ""
    return f"{cell['mention_diff']:+.3f}<br>[{lo:+.3f}, {hi:+.3f}]<br>lr {cell['lr']:g}{edge}{mark}"


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
        z=z, x=arms, y=y, text=text, texttemplate="%{text}", colorscale="RdBu",
        zmin=-LIFT_RANGE, zmax=LIFT_RANGE, zmid=0,
        colorbar={"title": f"lift<br>(±{LIFT_RANGE:g} on<br>every map)", "len": 0.9}, hoverongaps=False, textfont={"size": FONT},
    )  # fmt: skip


def _points(rows: list[dict], name: str, arms: list[str], verdicts: dict[str, Any], side: str) -> go.Scatter:
    """One marker per arm with its CI and its lr written on its `side` ("left" or "right"); arms are
    categories, so no line joins them."""
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
        mode="markers+text",
        marker={"size": 10},
        name=name + _verdict_tag(verdicts, sep="<br>  "),
        text=[f"lr {p['lr']:g}" for p in pts],
        textposition=f"middle {side}",
        textfont={"size": FONT},
        cliponaxis=False,
    )


def _title(trait: str, model: str | None) -> str:
    on = f" on {model}" if model else ""
    return f"Claims map: '{trait}'{on} (lift over control, mention rate)"


def claims_map_figure(summary: dict[str, Any], trait: str, model: str | None = None) -> go.Figure:
    """Left: the map (rows = conditions, columns = arms; § marks a cell whose lift needs the system
    prompt by the effect-size rule; row labels carry the verdicts, strict / effect size). Right: each
    arm's best-lr point beside its fixed-lr point, each labelled with its lr. `model` names the model in
    the title. The colour bar sits between the panels and the points' legend under them."""
    s = summary["claims_map"]
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.16,
        subplot_titles=("lift over control per condition and arm", "AdamW: best lr vs fixed lr"),
    )  # fmt: skip
    fig.add_trace(_heatmap(s), row=1, col=1)
    fig.update_traces(colorbar_x=fig.layout.xaxis.domain[1] + 0.01, selector={"type": "heatmap"})
    for label, side in (("AdamW, best lr", "left"), ("AdamW, fixed lr", "right")):  # side by side per arm
        if label in s["rows"]:
            points = _points(s["rows"][label], label, s["arms"], s["verdicts"][label], side)
            fig.add_trace(points, row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    room = [-0.9, len(s["arms"]) - 0.1]  # space for the lr labels left of the first arm and right of the last
    fig.update_xaxes(
        type="category", categoryorder="array", categoryarray=s["arms"], range=room, row=1, col=2
    )
    fig.update_yaxes(title_text="lift over control", zeroline=True, row=1, col=2)
    legend = {
        "x": fig.layout.xaxis2.domain[0], "xanchor": "left", "y": -0.05, "yanchor": "top",
        "title": {"text": "verdicts: strict / effect size"},
    }  # fmt: skip
    fig.add_annotation(
        text=f"row verdicts: strict rule / effect-size rule (effect fraction {s['effect_fraction']})<br>"
        "§ the cell's lift needs the system prompt (effect-size rule)",
        xref="paper", yref="paper", x=0, y=-0.05, xanchor="left", yanchor="top", showarrow=False, align="left",
    )  # fmt: skip
    fig.update_annotations(font_size=FONT + 1)  # the subplot titles and the note
    fig.update_layout(
        title={"text": _title(trait, model), "font": {"size": FONT + 5}},
        font={"size": FONT}, width=1500, height=320 + 76 * len(s["rows"]), legend=legend,
        margin={"b": 170, "l": 230}, scattermode="group",
    )  # fmt: skip
    return fig
