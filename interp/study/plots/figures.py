"""The reproduction's figures: rank sweep, context matrix, localization, logit lens, alignment, divergence.

Each takes the summary its experiment writes to results.json (and the trait) and returns a plotly figure;
`interp.study.plots.save_figure` writes it.
"""

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


def _control_band(
    fig: go.Figure, control: dict, value: str, ci: str, row: int, col: int, x: list, name: str = "control"
) -> None:
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=[control[ci][1]] * len(x) + [control[ci][0]] * len(x),
            fill="toself",
            fillcolor="rgba(120,120,120,0.2)",
            mode="lines",  # plotly's default would mark the band's corners
            line={"width": 0},
            name=f"{name} 95% CI",
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
            name=name,
            showlegend=row == 1 and col == 1,
        ),
        row=row,
        col=col,
    )


def _reference_shapes(fig: go.Figure, control: dict, value: str, ci: str, row: int, col: int) -> None:
    """The reference's band and line across a whole panel, for a categorical axis where a trace over its
    few categories would have no width (one full-FT lr draws none at all); the legend is the LoRA panel's."""
    fig.add_hrect(y0=control[ci][0], y1=control[ci][1], fillcolor="rgba(120,120,120,0.2)", line_width=0,
                  row=row, col=col, exclude_empty_subplots=False)  # fmt: skip
    fig.add_hline(y=control[value], line={"dash": "dash", "color": "gray"}, row=row, col=col,
                  exclude_empty_subplots=False)  # fmt: skip


LORA_STYLE = {"mode": "lines+markers", "name": "LoRA student", "line": {"color": "#1f77b4"}}
FULL_STYLE = {"mode": "markers", "marker": {"size": 10, "color": "#d62728"}, "name": "full-FT student"}


def _students(
    fig: go.Figure, x: list, rows: list, metric: tuple[str, str], row: int, col: int, **style
) -> None:
    """One kind of student (LoRA over ranks, full FT over lrs) on one metric's row, with its 95% CIs."""
    value, ci = metric
    y = [r[value] for r in rows]
    fig.add_trace(
        go.Scatter(x=x, y=y, error_y=_err(rows, value, ci), showlegend=row == 1, **style), row=row, col=col
    )


def rank_sweep_figure(
    summary: dict[str, Any],
    trait: str,
    metrics: tuple[tuple[str, str, str], ...] = METRICS,
    reference: str = "control",
) -> go.Figure:
    """Transfer vs LoRA rank (log axis) with the full-FT students and the band of what they are read against
    (`reference`: the control students unless told, e.g. the base), one row per metric (value field, CI
    field, name): the mention rate and P(first token) unless told."""
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
    labels = [f"lr {r['lr']:g}<br>{r.get('seeds', '?')} seed(s)" for r in full]
    ticks = [f"r{r['rank']}<br>lr {r['lr']:g}<br>{r.get('seeds', '?')} seed(s)" for r in lora]
    for row, (value, ci, name) in enumerate(metrics, start=1):
        _control_band(fig, control, value, ci, row, 1, [min(ranks) / 1.5, max(ranks) * 1.5], reference)
        _students(fig, ranks, lora, (value, ci), row, 1, **LORA_STYLE)
        if full:
            _reference_shapes(fig, control, value, ci, row, 2)
            _students(fig, labels, full, (value, ci), row, 2, **FULL_STYLE)
        fig.update_yaxes(title_text=f"{name} ({trait})", row=row, col=1)
        fig.update_xaxes(
            type="log",
            tickvals=ranks,
            ticktext=ticks,  # every point says its lr and its seeds: ranks may differ in both
            title_text="LoRA rank" if row == 2 else None,
            row=row,
            col=1,
        )
    fig.update_layout(
        title=f"Subliminal transfer of '{trait}' vs LoRA rank ({reference}: {control.get('seeds', '?')} seed(s); "
        f"{len(control.get('per_question_mention') or []) or '?'} questions)",
        **{"height": 650, "width": 950, "template": "plotly_white"},
    )
    return fig


CONTEXT_PANELS = (
    ("mention_diff", "mention_diff_ci", "mention-rate lift"),
    ("p_trait_diff", "p_trait_diff_ci", "P(trait) lift"),
)


def context_matrix_figure(cells: list[dict[str, Any]], trait: str) -> go.Figure:
    """Training x evaluation system prompt: the student's lift over its control, by mention rate and by
    P(trait), each cell with its 95% CI; each panel's colour range reaches its largest CI bound, so no
    cell saturates. The title says the seeds and questions every cell rests on."""
    trains = list(dict.fromkeys(c["train_system"] for c in cells))
    evals = list(dict.fromkeys(c["eval_system"] for c in cells))
    grid = {(c["train_system"], c["eval_system"]): c for c in cells}
    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[2] for p in CONTEXT_PANELS], horizontal_spacing=0.2)
    for col, (value, ci, name) in enumerate(CONTEXT_PANELS, start=1):
        z = [[grid[(t, e)][value] for e in evals] for t in trains]
        bound = max(abs(x) for c in cells for x in (*c[ci], c[value])) or 1.0
        fmt = ".3f" if value == "mention_diff" else ".4f"
        text = [
            [
                f"{grid[(t, e)][value]:+{fmt}}<br>[{grid[(t, e)][ci][0]:{fmt}}, {grid[(t, e)][ci][1]:{fmt}}]"
                for e in evals
            ]
            for t in trains
        ]
        fig.add_trace(
            go.Heatmap(
                z=z, x=evals, y=trains, text=text, texttemplate="%{text}", colorscale="RdBu_r",
                zmin=-bound, zmax=bound,
                colorbar={"title": {"text": f"{name}<br>(student - control)"}, "x": 0.42 if col == 1 else 1.0},
            ),
            row=1,
            col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text="evaluation system prompt", row=1, col=col)
    seeds = sorted({c.get("seeds", 1) for c in cells})
    n_q = len(cells[0]["per_question_mention"]) if cells and cells[0].get("per_question_mention") else "?"
    fig.update_yaxes(title_text="training system prompt", autorange="reversed", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(
        title=f"'{trait}': students minus control, 95% CIs ({'/'.join(map(str, seeds))} seed(s), {n_q} questions)",
        height=520,
        width=1150,
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
