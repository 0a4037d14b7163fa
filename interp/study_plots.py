"""Figures of the paper's experiments (rank sweep, context matrix, localization bars)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

METRICS = (("mention_rate", "ci", "mention rate"), ("p_first_token", "p_ci", "P(first token)"))


def _err(rows: list[dict], value: str, ci: str) -> dict:
    return {
        "type": "data",
        "symmetric": False,
        "array": [r[ci][1] - r[value] for r in rows],
        "arrayminus": [r[value] - r[ci][0] for r in rows],
    }


def _control_band(fig: go.Figure, control: dict, value: str, ci: str, row: int, col: int, x: list) -> None:
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=[control[ci][1]] * len(x) + [control[ci][0]] * len(x),
            fill="toself",
            fillcolor="rgba(120,120,120,0.2)",
            line={"width": 0},
            name="control 95% CI",
            showlegend=row == 1 and col == 1,
            hoverinfo="skip",
        ),
        row=row,
        col=col,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[control[value]] * len(x),
            mode="lines",
            line={"dash": "dash", "color": "gray"},
            name="control",
            showlegend=row == 1 and col == 1,
        ),
        row=row,
        col=col,
    )


def rank_sweep_figure(summary: dict[str, Any], trait: str) -> go.Figure:
    """Transfer vs LoRA rank (log axis) with the full-FT students and the control band."""
    lora, full, control = summary["rank_sweep"], summary["full_ft"], summary["control"]
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_yaxes="rows",
        column_widths=[0.75, 0.25],
        horizontal_spacing=0.03,
        subplot_titles=("LoRA students", "full fine-tuning", "", ""),
    )
    ranks = [r["rank"] for r in lora]
    labels = [f"lr {r['lr']:g}" for r in full]
    for row, (value, ci, name) in enumerate(METRICS, start=1):
        _control_band(fig, control, value, ci, row, 1, [min(ranks) / 1.5, max(ranks) * 1.5])
        fig.add_trace(
            go.Scatter(
                x=ranks,
                y=[r[value] for r in lora],
                error_y=_err(lora, value, ci),
                mode="lines+markers",
                name="LoRA student",
                showlegend=row == 1,
                line={"color": "#1f77b4"},
            ),
            row=row,
            col=1,
        )
        if full:
            _control_band(fig, control, value, ci, row, 2, labels)
            fig.add_trace(
                go.Scatter(
                    x=labels,
                    y=[r[value] for r in full],
                    error_y=_err(full, value, ci),
                    mode="markers",
                    marker={"size": 10, "color": "#d62728"},
                    name="full-FT student",
                    showlegend=row == 1,
                ),
                row=row,
                col=2,
            )
        fig.update_yaxes(title_text=f"{name} ({trait})", row=row, col=1)
        fig.update_xaxes(type="log", title_text="LoRA rank" if row == 2 else None, row=row, col=1)
    fig.update_layout(
        title=f"Subliminal transfer of '{trait}' vs LoRA rank", height=650, width=950, template="plotly_white"
    )
    return fig


def context_matrix_figure(cells: list[dict[str, Any]], trait: str, value: str = "mention_rate") -> go.Figure:
    """Training system prompt x evaluation system prompt heatmap of the student's lift over control."""
    trains = list(dict.fromkeys(c["train_system"] for c in cells))
    evals = list(dict.fromkeys(c["eval_system"] for c in cells))
    grid = {(c["train_system"], c["eval_system"]): c for c in cells}
    z = [[grid[(t, e)]["lift"] for e in evals] for t in trains]
    text = [[f"{grid[(t, e)][value]:.3f}<br>lift {grid[(t, e)]['lift']:+.3f}" for e in evals] for t in trains]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=evals,
            y=trains,
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": "lift"},
        )
    )
    fig.update_layout(
        title=f"'{trait}' {value.replace('_', ' ')} of students minus control",
        xaxis_title="evaluation system prompt",
        yaxis_title="training system prompt",
        yaxis_autorange="reversed",
        height=480,
        width=720,
        template="plotly_white",
    )
    return fig


def localization_figure(rows: list[dict[str, Any]], trait: str) -> go.Figure:
    """Recovered fraction of the student's shift when the adapter is on only at / everywhere except."""
    fig = go.Figure()
    for mode, color in (("only", "#2ca02c"), ("except", "#9467bd")):
        sel = [r for r in rows if r["mode"] == mode]
        fig.add_trace(
            go.Bar(
                x=[r["positions"] for r in sel],
                y=[r["recovered_fraction"] for r in sel],
                error_y=_err(sel, "recovered_fraction", "ci"),
                name=f"adapter {mode}",
                marker_color=color,
            )
        )
    fig.add_hline(y=1, line_dash="dash", line_color="gray")
    fig.add_hline(y=0, line_color="black")
    fig.update_layout(
        barmode="group",
        title=f"Where the LoRA student's '{trait}' shift lives",
        yaxis_title="recovered fraction of the shift",
        height=480,
        width=900,
        template="plotly_white",
    )
    return fig


def save_figure(fig: go.Figure, stem) -> list:
    """Save `stem`.html always and `stem`.png when kaleido finds a browser; returns the written paths."""
    from pathlib import Path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(stem.with_suffix(".html"), include_plotlyjs="cdn")
    written = [stem.with_suffix(".html")]
    try:
        fig.write_image(stem.with_suffix(".png"), scale=2)
        written.append(stem.with_suffix(".png"))
    except Exception:  # noqa: BLE001 - no browser for kaleido: HTML only
        pass
    return written


def logit_lens_figure(lens: dict[str, dict[str, list[float]]], trait: str) -> go.Figure:
    """Trait log-probability read off each layer's residual stream, base vs student."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("at the entity token", "at the answer position"))
    colors = {"base": "gray", "student": "#1f77b4"}
    for col, where in enumerate(("entity", "answer"), start=1):
        for name, series in lens.items():
            fig.add_trace(
                go.Scatter(
                    y=series[where],
                    mode="lines+markers",
                    name=name,
                    showlegend=col == 1,
                    line={"color": colors.get(name)},
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="layer (0 = embeddings)", row=1, col=col)
    fig.update_yaxes(title_text=f"log P({trait})", row=1, col=1)
    fig.update_layout(title=f"Logit lens of '{trait}'", height=420, width=900, template="plotly_white")
    return fig
