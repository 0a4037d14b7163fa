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


def lr_screen_figure(res: dict[str, Any]) -> go.Figure:
    """An lr screen (`interp.study.lr_screen.screen`): per arm, the P(trait) lift with its 95% CI and the final
    loss against lr (log axes for lr and loss), and where measured the answers' excess NLL under the base; an
    open marker is an lr whose fit counts as overshot, a star the pick of the lift-among-sound rule, a diamond
    the fit rule's."""
    fluency = res.get("max_excess_nll") is not None
    titles = [f"P({res['trait']}) lift over the {res['reference']}", "final loss (last tenth of the epoch)"]
    titles += ["answers' excess NLL under the base (nats/token)"] if fluency else []
    fig = make_subplots(rows=1, cols=len(titles), horizontal_spacing=0.08, subplot_titles=titles)
    palette = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    for i, (arm, rows) in enumerate(res["arms"].items()):
        colour = ARM_COLOURS["full"] if arm == "full FT" else palette[i % len(palette)]
        lrs = [r["lr"] for r in rows]
        symbols = [
            "star" if r["label"] == res["best"]["lift_among_sound"][arm]
            else "diamond" if r["label"] == res["best"]["fit"][arm] else "circle"
            for r in rows
        ]  # fmt: skip
        symbols = [s if r["sound"] else f"{s}-open" for s, r in zip(symbols, rows, strict=True)]
        marker = {"color": colour, "size": 11, "symbol": symbols}
        err = ci_bars(rows, "p_trait_diff")
        hover = [f"{r['label']}, {r['seeds']} seed(s)" for r in rows]
        fig.add_trace(go.Scatter(x=lrs, y=[r["p_trait_diff"] for r in rows], error_y=err, mode="lines+markers",
                                 marker=marker, line={"color": colour}, name=arm, text=hover), row=1, col=1)  # fmt: skip
        fig.add_trace(go.Scatter(x=lrs, y=[r["final_loss"] for r in rows], mode="lines+markers", marker=marker,
                                 line={"color": colour}, name=arm, text=hover, showlegend=False), row=1, col=2)  # fmt: skip
        if fluency:
            fig.add_trace(go.Scatter(x=lrs, y=[r["excess_nll"] for r in rows], error_y=ci_bars(rows, "excess_nll"),
                                     mode="lines+markers", marker=marker, line={"color": colour}, name=arm,
                                     text=hover, showlegend=False), row=1, col=3)  # fmt: skip
    fig.add_hline(y=0, line={"color": "gray", "dash": "dot"}, row=1, col=1)
    if fluency:
        fig.add_hline(y=res["max_excess_nll"], line={"color": "gray", "dash": "dash"}, row=1, col=3)
    fig.update_xaxes(type="log", title_text="lr", exponentformat="power")
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(
        title=f"lr screen, trait {res['trait']}: star = largest lift among sound lrs, diamond = best fit, "
        f"open = final loss over {res['max_loss_ratio']:g}x the arm's lowest",
        height=480, width=1200 + 500 * fluency,
    )  # fmt: skip
    return fig


def ci_bars(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Asymmetric error bars from each row's `key` and its 95% CI (`key`_ci)."""
    return {
        "type": "data", "symmetric": False,
        "array": [r[f"{key}_ci"][1] - r[key] for r in rows],
        "arrayminus": [r[key] - r[f"{key}_ci"][0] for r in rows],
    }  # fmt: skip
