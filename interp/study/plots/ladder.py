"""The positive-control ladder's figure: each rung's lift over its own control, with its CI and its MDE."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

PANELS = (
    ("p_trait_diff", "p_trait_diff_ci", "p_trait_mde", "P(trait) lift over control"),
    ("mention_diff", "mention_diff_ci", "mention_mde", "mention-rate lift over control"),
)
ARM_COLOURS = {"lora": "#1f77b4", "full": "#d62728"}


def _label(row: dict[str, Any]) -> str:
    return f"{row['rung']}<br>{row['arm']} lr {row['lr']:g}<br>{row['seeds']} seed(s) / ctl {row['control_seeds']}"


def ladder_figure(summary: dict[str, Any], trait: str) -> go.Figure:
    """Two panels (P(trait), mention rate): per (rung, arm) the lift, its 95% CI over seeds and questions,
    and the minimum detectable lift as an open marker (a null whose CI sits inside it says little)."""
    rows = summary["rows"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[3] for p in PANELS], horizontal_spacing=0.12)
    x = [_label(r) for r in rows]
    for col, (value, ci, mde, _) in enumerate(PANELS, start=1):
        for arm, colour in ARM_COLOURS.items():
            pick = [i for i, r in enumerate(rows) if r["arm"] == arm]
            if not pick:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[x[i] for i in pick],
                    y=[rows[i][value] for i in pick],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [rows[i][ci][1] - rows[i][value] for i in pick],
                        "arrayminus": [rows[i][value] - rows[i][ci][0] for i in pick],
                    },
                    mode="markers",
                    marker={"color": colour, "size": 9},
                    name=f"{arm}: lift, 95% CI",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=[x[i] for i in pick],
                    y=[rows[i][mde] for i in pick],
                    mode="markers",
                    marker={"color": colour, "symbol": "line-ew-open", "size": 18, "line": {"width": 2}},
                    name=f"{arm}: MDE (80% power)"
                    + (
                        ", a floor: seed spread unknown"
                        if any(rows[i].get(f"{mde}_is_floor") for i in pick)
                        else ""
                    ),
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        fig.add_hline(y=0, line={"color": "gray", "dash": "dot"}, row=1, col=col)
    n_q = len(summary["base"]["per_question_p_trait"])
    fig.update_layout(
        title=f"Positive-control ladder, trait {trait}: each rung minus its own control ({n_q} questions)",
        height=520,
        width=1200,
    )
    return fig
