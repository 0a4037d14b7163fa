"""Heatmaps and the labelled result type: class bands, HTML always, PNG fallback, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import interp.study.plots as plots
import interp.study.plots.heatmaps as heatmap_module
from interp import InterpError
from interp.mech.results import LocalizationResult


def _result(kind: str = "layer_pos") -> LocalizationResult:
    cols = ["<|im_start|>", "Z", "or", "Hi", "\n"]
    return LocalizationResult(
        scores=torch.rand(2, 5),
        raw=torch.rand(2, 5),
        kind=kind,
        site="resid_pre",
        metric="log p(owl)",
        layers=[0, 1],
        col_labels=cols,
        col_classes=["template", "entity", "entity", "user", "assistant_header"],
        recipient_metric=-5.0,
        donor_metric=-4.0,
        config={"trait": "owl"},
    )


def test_heatmap_has_tokens_and_class_band() -> None:
    fig = plots.heatmap(_result())
    assert list(fig.layout.xaxis.ticktext)[1] == "1:Z"
    assert len(fig.layout.shapes) == 5  # one coloured band cell per position
    legend = {t.name for t in fig.data if t.type == "scatter"}
    assert legend == {"template", "entity", "user", "assistant_header"}
    assert len(plots.heatmap(_result("layer_class")).layout.shapes) == 0


def test_save_html_and_png_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_browser(*args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed")

    monkeypatch.setattr(heatmap_module.pio, "write_images", no_browser)
    monkeypatch.setattr(heatmap_module, "_PNG_WORKS", None)
    written = plots.save_figures({"a": plots.heatmap(_result()), "b": plots.heatmap(_result())}, tmp_path)
    assert [p.name for p in written] == ["a.html", "b.html"] and (tmp_path / "plotly.min.js").exists()
    assert heatmap_module._PNG_WORKS is False


def test_result_roundtrip(tmp_path: Path) -> None:
    result = _result()
    result.scores[0, 0] = float("nan")
    result.save(tmp_path, "grid")
    back = LocalizationResult.load(tmp_path, "grid")
    assert torch.equal(back.raw, result.raw) and back.scores[0, 0].isnan()
    assert back.meta() == result.meta() and result.to_json()["scores"][0][0] is None
    with pytest.raises(InterpError, match="no saved result"):
        LocalizationResult.load(tmp_path, "missing")
    with pytest.raises(InterpError, match="do not match"):
        LocalizationResult(torch.zeros(1, 2), torch.zeros(1, 2), "layer_pos", "resid_pre", "m", [0], ["a"])
