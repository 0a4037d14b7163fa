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
from interp.mech.results import FRACTION_NAMES, LocalizationResult, on_student_scale

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


# Whitespace made visible in tick labels (byte-level BPE writes a space as "Ġ" and a newline as "Ċ").
VISIBLE = {"Ġ": "␣", " ": "␣", "Ċ": "↵", "\n": "↵", "ĉ": "⇥", "\t": "⇥"}
STRUCTURAL = "≡"


def _wrapped(label: str, width: int = 12) -> str:
    """A long column label broken at the space nearest its middle ("template before<br>header")."""
    spaces = [i for i, c in enumerate(label) if c == " "]
    if len(label) <= width or not spaces:
        return label
    cut = min(spaces, key=lambda i: abs(i - len(label) / 2))
    return f"{label[:cut]}<br>{label[cut + 1 :]}"


def visible(token: str) -> str:
    """A token with its spaces, newlines and tabs shown as ␣, ↵ and ⇥ ("∅" for an empty one)."""
    return "".join(VISIBLE.get(ch, ch) for ch in token) or "∅"


def _tick(label: str, i: int) -> str:
    return f"{i}:{visible(label)}".replace("<", "&lt;")  # plotly reads "<" as markup


def _class_band(fig: go.Figure, classes: list[str], labels: list[str]) -> None:
    """A row of coloured rectangles above the plot, one per column, coloured by token class; a run of
    entity columns (an entity split into several tokens) is bracketed and named once. The shapes are set
    in one assignment: plotly's `add_shape` revalidates every shape so far on each call, which made a
    band of a few hundred columns cost seconds per figure."""
    band = {"type": "rect", "xref": "x", "yref": "paper", "y0": 1.01, "y1": 1.05, "line": {"width": 0}}
    shapes = [
        {**band, "x0": i - 0.5, "x1": i + 0.5, "fillcolor": CLASS_COLOURS.get(cls, "#bcbd22")}
        for i, cls in enumerate(classes)
    ]
    notes = []
    for start, end in _runs(classes, ENTITY):
        name = "".join(labels[start : end + 1]).replace("Ġ", " ").strip()
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": start - 0.45,
                "x1": end + 0.45,
                "y0": 1.07,
                "y1": 1.07,
                "line": {"color": CLASS_COLOURS[ENTITY], "width": 2},
            }
        )
        notes.append(
            {
                "x": (start + end) / 2,
                "y": 1.08,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "text": f"entity '{name}' ({end - start + 1} tokens)" if end > start else f"entity '{name}'",
                "showarrow": False,
                "font": {"size": 11, "color": CLASS_COLOURS[ENTITY]},
            }
        )
    fig.update_layout(shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *notes])
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


def _runs(classes: list[str], cls: str) -> list[tuple[int, int]]:
    """(first, last) column of each run of consecutive columns of class `cls`."""
    runs: list[tuple[int, int]] = []
    for i, c in enumerate(classes):
        if c != cls:
            continue
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _cell_text(result: LocalizationResult) -> list[list[str]]:
    """ "≡" on cells whose patch is a no-op (a structural no-op), nothing elsewhere."""
    same = result.identical
    rows, cols = result.scores.shape
    return [
        [STRUCTURAL if same is not None and bool(same[i, j]) else "" for j in range(cols)]
        for i in range(rows)
    ]


def _hover(result: LocalizationResult, ticks: list[str], rows: list[str], reads: str) -> list[list[str]]:
    n = result.config.get("n_present")
    out = []
    for i, row in enumerate(rows):
        line = []
        for j, tick in enumerate(ticks):
            text = f"{row}<br>{tick}<br>{reads} {result.scores[i, j]:.3f}<br>raw {result.raw[i, j]:.4f}"
            if result.spread is not None:
                text += f"<br>sd across prompts {result.spread[i, j]:.3f}"
            if n is not None:
                text += f"<br>prompts {n[j]}"
            line.append(text)
        out.append(line)
    return out


def heatmap(
    result: LocalizationResult,
    title: str | None = None,
    direction: str | None = None,
    reference: str = "base",
) -> go.Figure:
    """A row x column heatmap of normalised scores, diverging around 0. With a `direction`, the scores are
    drawn on the scale of every recovered fraction, 0 = `reference` (the base, or a control student),
    1 = student (`on_student_scale`: noising's cells are the shift left, so a position the shift needs is
    pale, a no-op patch blue). The colour bar names the metric, what a cell reads as and the scale; tokens
    show their whitespace; a multi-token entity is bracketed; long class and set names wrap; "≡" marks
    structural no-ops."""
    if direction is not None:
        result = on_student_scale(result, direction, reference)
    reads = FRACTION_NAMES.get(direction, "patching score")
    x = list(range(len(result.col_labels)))
    positional = result.kind in ("layer_pos", "layer_aligned", "head_aligned")
    ticks = [_tick(t, i) if positional else _wrapped(t) for i, t in enumerate(result.col_labels)]
    rows = [f"H{r}" if result.kind == "head_aligned" else f"L{r}" for r in result.layers]
    fig = go.Figure(
        go.Heatmap(
            z=result.scores.float().tolist(),
            x=x,
            y=rows,
            text=_cell_text(result),
            texttemplate="%{text}",
            hovertext=_hover(result, ticks, rows, reads),
            hoverinfo="text",
            colorscale="RdBu",
            zmid=0.0,
            colorbar={
                "title": {
                    "text": f"{result.metric}:<br>{reads}<br>{result.scale}",
                    "side": "right",
                }
            },
        )
    )
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks, tickangle=-60 if len(x) > 12 else 0)
    fig.update_yaxes(title="head" if result.kind == "head_aligned" else "layer", autorange="reversed")
    if result.col_classes and positional:
        _class_band(fig, result.col_classes, result.col_labels)
    notes = [f"{STRUCTURAL} = donor and recipient activations identical there (a structural no-op)"]
    notes = notes if result.identical is not None and bool(result.identical.any()) else []
    base_title = title or result.title
    fig.update_layout(
        title={"text": base_title + "".join(f"<br><sup>{n}</sup>" for n in notes), "y": 0.97},
        width=max(600, min(4000, (18 if positional else 110) * len(x) + 300)),
        height=max(420, 28 * len(rows) + 330),
        margin={"t": 150},
        plot_bgcolor="white",
        legend={"orientation": "h", "x": 0, "y": 1.2, "yanchor": "bottom"} if positional else None,
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
