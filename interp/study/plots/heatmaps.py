"""Localization heatmaps, and saving any figure (the experiments' figures are in `figures.py` beside it).

`heatmap(result)` draws any `LocalizationResult`: layer x position with the prompt's tokens on the axis
and a coloured band above them marking each token's class, layer x token class, or layer x head.
`save_figure` always writes HTML and adds a PNG when kaleido finds a browser to render with.
"""

from __future__ import annotations

import logging
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from interp.mech.positions import ENTITY, GENERATED, HEADER, PAD, SYSTEM, TEMPLATE, USER
from interp.mech.results import LocalizationResult

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
