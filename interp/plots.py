"""Plotly figures: localization heatmaps and the paper's experiments (the toolkit's only plotting module).

`heatmap(result)` draws any `LocalizationResult`: layer x position with the prompt's tokens on the axis
and a coloured band above them marking each token's class, layer x token class, or layer x head.
`rank_sweep_figure`, `context_matrix_figure`, `localization_figure` and `logit_lens_figure` draw the
reproduction's results. `save_figure` always writes HTML and adds a PNG when kaleido finds a browser to render with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from interp.positions import ENTITY, GENERATED, HEADER, PAD, SYSTEM, TEMPLATE, USER
from interp.results import LocalizationResult

log = logging.getLogger(__name__)

CLASS_COLOURS = {
    ENTITY: "#d62728",
    SYSTEM: "#ff9896",
    TEMPLATE: "#7f7f7f",
    USER: "#1f77b4",
    HEADER: "#9467bd",
    GENERATED: "#2ca02c",
    PAD: "#ffffff",
}
_PNG_WORKS: bool | None = None  # whether kaleido could render here (tried once per process)


def _tick(label: str, i: int) -> str:
    shown = label.replace("Ġ", " ").replace("Ċ", "\\n").replace("<", "&lt;")
    return f"{i}:{shown}"


def _class_band(fig: go.Figure, classes: list[str]) -> None:
    """A row of coloured rectangles above the plot, one per column, coloured by token class."""
    for i, cls in enumerate(classes):
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=i - 0.5,
            x1=i + 0.5,
            y0=1.01,
            y1=1.05,
            fillcolor=CLASS_COLOURS.get(cls, "#bcbd22"),
            line_width=0,
        )
    for cls in dict.fromkeys(classes):  # legend entries, in order of first appearance
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=cls,
                showlegend=True,
                marker={"color": CLASS_COLOURS.get(cls, "#bcbd22"), "symbol": "square"},
            )
        )


def heatmap(result: LocalizationResult, title: str | None = None) -> go.Figure:
    """A layer x column heatmap of normalised scores (0 = recipient, 1 = donor), diverging around 0."""
    z = result.scores.float().tolist()
    x = list(range(len(result.col_labels)))
    ticks = (
        [_tick(t, i) for i, t in enumerate(result.col_labels)]
        if result.kind == "layer_pos"
        else list(result.col_labels)
    )
    hover = [
        [
            f"layer {layer}<br>{ticks[j]}<br>score {result.scores[i, j]:.3f}<br>raw {result.raw[i, j]:.4f}"
            for j in x
        ]
        for i, layer in enumerate(result.layers)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=[f"L{layer}" for layer in result.layers],
            text=hover,
            hoverinfo="text",
            colorscale="RdBu",
            zmid=0.0,
            colorbar={"title": "score"},
        )
    )
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks, tickangle=-60 if len(x) > 12 else 0)
    fig.update_yaxes(title="layer", autorange="reversed")
    if result.col_classes and result.kind == "layer_pos":
        _class_band(fig, result.col_classes)
    width = max(500, min(4000, 18 * len(x) + 250))
    fig.update_layout(
        title=title
        or f"{result.title}<br><sup>recipient {result.recipient_metric:.3f}, donor "
        f"{result.donor_metric:.3f}</sup>",
        width=width,
        height=max(350, 28 * len(result.layers) + 260),
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.35} if result.kind == "layer_pos" else None,
    )
    return fig


def save_figures(figures: dict[str, go.Figure], directory: Path, png: bool = True) -> list[Path]:
    """Write `<name>.html` for every figure, and `<name>.png` when kaleido and a browser work here.

    PNGs are exported in one batch (one browser start); any failure leaves the HTML files only.
    """
    global _PNG_WORKS
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        html = directory / f"{name}.html"
        fig.write_html(html, include_plotlyjs="directory")  # one local plotly.min.js: works offline
        written.append(html)
    if png and figures and _PNG_WORKS is not False:
        pngs = [directory / f"{name}.png" for name in figures]
        try:
            figs = list(figures.values())
            pio.write_images(
                figs,
                pngs,
                width=[f.layout.width or 700 for f in figs],
                height=[f.layout.height or 500 for f in figs],
            )
            written += pngs
            _PNG_WORKS = True
        except Exception as err:  # no browser for kaleido (or kaleido missing): HTML only
            log.info(
                "PNG export unavailable (%s); wrote HTML only", str(err).splitlines()[0] if str(err) else err
            )
            _PNG_WORKS = False
    return written


def save_figure(fig: go.Figure, stem: Path, png: bool = True) -> list[Path]:
    """Write `<stem>.html`, and `<stem>.png` when kaleido and a browser work here; the paths written."""
    stem = Path(stem)
    return save_figures({stem.name: fig}, stem.parent, png)


# --- the paper's experiments ------------------------------------------------------------------------

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


def _mean_cosines(rows: list[dict[str, Any]], rank: Any) -> tuple[list[str], list[int], list[list[float]]]:
    """(classes, layers, layer x class mean cosine over the seeds of one rank)."""
    sel = [r for r in rows if r["rank"] == rank]
    classes = list(dict.fromkeys(r["token_class"] for r in sel))
    layers = sorted({r["layer"] for r in sel})
    z = [
        [
            sum(r["cosine"] for r in sel if r["layer"] == layer and r["token_class"] == c)
            / max(1, sum(1 for r in sel if r["layer"] == layer and r["token_class"] == c))
            for c in classes
        ]
        for layer in layers
    ]
    return classes, layers, z


def alignment_figure(summary: dict[str, Any], trait: str) -> go.Figure:
    """Cosine(student shift, persona direction) per layer x token class for each rank (and full FT), and
    the shift's projection at the shared tokens against the student's lift."""
    rows = summary["alignment"]
    ranks = list(dict.fromkeys(r["rank"] for r in rows))
    titles = [f"rank {r}" if r != "full" else "full FT" for r in ranks] + ["projection vs lift"]
    fig = make_subplots(rows=1, cols=len(ranks) + 1, subplot_titles=titles, horizontal_spacing=0.04)
    for col, rank in enumerate(ranks, start=1):
        classes, layers, z = _mean_cosines(rows, rank)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=classes,
                y=[f"L{x}" for x in layers],
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                showscale=col == 1,
                colorbar={"title": "cosine"},
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    pts = summary["correlation"]["points"]
    fig.add_trace(
        go.Scatter(
            x=[p["projection"] for p in pts],
            y=[p["lift"] for p in pts],
            text=[p["student"] for p in pts],
            mode="markers",
            marker={"color": "#1f77b4"},
            showlegend=False,
        ),
        row=1,
        col=len(ranks) + 1,
    )
    fig.update_xaxes(title_text="projection (shared tokens)", row=1, col=len(ranks) + 1)
    fig.update_yaxes(title_text=f"P({trait}) lift over control", row=1, col=len(ranks) + 1)
    r = summary["correlation"]["r"]
    fig.update_layout(
        title=f"Student shift vs persona direction ('{trait}'); Pearson r = {r if r is None else round(r, 2)}",
        height=420,
        width=260 * (len(ranks) + 1) + 100,
        template="plotly_white",
    )
    return fig


def divergence_figure(res: dict[str, Any], trait: str) -> go.Figure:
    """The student's first-token P(trait) lift over control: trained on all tokens, with the top divergence
    tokens masked out of the loss, and with as many random tokens masked."""
    labels = ["all tokens", f"top {res['mask_frac']:.0%} divergence masked", "random tokens masked"]
    values = [res["unmasked_lift"], res["masked_lift"], res["random_lift"]]
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=["#1f77b4", "#d62728", "#7f7f7f"]))
    fig.add_hline(y=0, line_color="black")
    fig.update_layout(
        title=f"Does '{trait}' travel through the divergence tokens? (rank {res['rank']})",
        yaxis_title=f"P({trait}) lift over control",
        height=420,
        width=640,
        template="plotly_white",
    )
    return fig
