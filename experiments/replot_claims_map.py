"""Redraw a claims map's figure from its recorded results, without training anything.

    python -m experiments.replot_claims_map --results interp/organism/results/claims_map_tied.json
    python -m experiments.replot_claims_map --results runs/claims_map/results.json
    python -m experiments.replot_claims_map --results interp/organism/results/claims_map_default.json --no-html

Reads the map's results (a run's `results.json`, or a recorded `claims_map_<name>.json`) and the config it
ran with (`config.json` beside a run's results, `<stem>.config.json` beside a recorded one) for the trait
and the model, and writes `<stem>.png` (when a browser for kaleido is present) and `<stem>.html`. The recorded PNGs
under interp/organism/results/ are redrawn with `--no-html` (PNG only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from interp import InterpError
from interp.loop.config import cli_main
from interp.loop.models import model_label


@dataclass
class ReplotConfig:
    """Redraw a claims map's figure from its results JSON."""

    results: Path | None = None
    """The map's results: a run's results.json or a recorded claims_map_<name>.json."""
    run_config: Path | None = None
    """The config it ran with (None: config.json beside a run's results.json, else <stem>.config.json)."""
    out: Path | None = None
    """Figure stem (None: the results' own stem beside it, or figures/claims_map in a run directory)."""
    png: bool = True
    """Write a PNG (needs a browser for kaleido)."""
    html: bool = True
    """Write the interactive HTML (and plotly.min.js beside it); --no-html for a recorded PNG alone."""


def config_path(cfg: ReplotConfig) -> Path:
    if cfg.run_config is not None:
        return cfg.run_config
    if cfg.results.name == "results.json":
        return cfg.results.parent / "config.json"
    return cfg.results.with_suffix(".config.json")


def figure_stem(cfg: ReplotConfig) -> Path:
    if cfg.out is not None:
        return cfg.out
    if cfg.results.name == "results.json":
        return cfg.results.parent / "figures" / "claims_map"
    return cfg.results.with_suffix("")


def main(cfg: ReplotConfig) -> Path:
    from interp.study.plots import claims_map_figure, save_figure

    if cfg.results is None or not cfg.results.is_file():
        raise InterpError(f"--results must name a claims map's results JSON (got {cfg.results})")
    summary = json.loads(cfg.results.read_text())
    if "claims_map" not in summary:
        raise InterpError(f"{cfg.results} holds no claims map (no 'claims_map' key)")
    run_cfg = json.loads(config_path(cfg).read_text()) if config_path(cfg).is_file() else {}
    model = model_label(run_cfg.get("model")) if run_cfg else None  # a null model is the default organism
    fig = claims_map_figure(summary, run_cfg.get("trait", "trait"), model)
    stem = figure_stem(cfg)
    if cfg.html:
        save_figure(fig, stem, png=cfg.png)
    elif cfg.png:  # no fallback here: the PNG alone was asked for
        stem.parent.mkdir(parents=True, exist_ok=True)
        fig.write_image(stem.with_suffix(".png"), width=fig.layout.width, height=fig.layout.height)
    return stem


if __name__ == "__main__":
    cli_main(main, ReplotConfig)
