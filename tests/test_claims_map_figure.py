"""The claims-map figure compares across maps: one colour scale, § exactly where the effect-size rule says
the lift needs the system prompt, the model named, lr on every point, no lines across categorical arms,
readable text; and it is redrawn from recorded results without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import replot_claims_map as replot
from interp.study.plots import claims_map_figure
from interp.study.plots.claims_map import FONT

RESULTS = Path(__file__).resolve().parents[1] / "interp" / "organism" / "results"
MAPS = ("claims_map_default", "claims_map_tied", "claims_map_quick_default")


def _summary(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _marked_in_data(summary: dict) -> set[tuple[str, str]]:
    """(row, arm) of every cell whose no-prompt lift the effect-size rule calls held, read off the JSON."""
    s = summary["claims_map"]
    return {
        (row, arm)
        for row, by_arm in ((r, s["verdicts"][r]["needs_shared_system_prompt"]) for r in s["rows"])
        for arm, v in by_arm.items()
        if v["effect_size"]["verdict"] == "held"
    }


def _marked_in_figure(fig) -> set[tuple[str, str]]:
    heat = fig.data[0]
    return {
        (heat.y[i].split("<br>")[0], heat.x[j])
        for i, row in enumerate(heat.text)
        for j, text in enumerate(row)
        if "§" in text
    }


def test_every_map_shares_one_symmetric_colour_scale() -> None:
    scales = {(h.zmin, h.zmax) for h in (claims_map_figure(_summary(n), "wolf").data[0] for n in MAPS)}
    assert len(scales) == 1
    ((lo, hi),) = scales
    assert lo == -hi and hi > 0
    lifts = [
        c["mention_diff"] for n in MAPS for cells in _summary(n)["claims_map"]["rows"].values() for c in cells
    ]
    assert max(abs(x) for x in lifts) <= hi  # no recorded lift saturates the scale


@pytest.mark.parametrize("name", MAPS)
def test_the_section_mark_sits_exactly_on_the_cells_the_rule_holds_for(name: str) -> None:
    summary = _summary(name)
    assert _marked_in_figure(claims_map_figure(summary, "wolf")) == _marked_in_data(summary)


def test_a_strict_only_verdict_gets_no_section_mark() -> None:
    """The default map's pure-bf16 full-FT cell holds the strict rule only: the figure leaves it unmarked."""
    summary = _summary("claims_map_default")
    strict = {
        (r, a)
        for r in summary["claims_map"]["rows"]
        for a, v in summary["claims_map"]["verdicts"][r]["needs_shared_system_prompt"].items()
        if v["verdict"] == "held"
    }
    assert strict - _marked_in_data(summary)  # the data has such a cell
    assert not (strict - _marked_in_data(summary)) & _marked_in_figure(claims_map_figure(summary, "wolf"))


def test_points_name_the_model_label_their_lr_and_are_not_joined() -> None:
    summary = _summary("claims_map_tied")
    fig = claims_map_figure(summary, "wolf", "organism-tied")
    assert "organism-tied" in fig.layout.title.text and "wolf" in fig.layout.title.text
    points = [t for t in fig.data if t.type == "scatter"]
    assert len(points) == 2
    for trace in points:
        assert "lines" not in trace.mode and "text" in trace.mode
        label = trace.name.split("<br>")[0]
        lrs = [f"lr {c['lr']:g}" for c in summary["claims_map"]["rows"][label]]
        assert list(trace.text) == lrs
    assert fig.layout.scattermode == "group"  # best and fixed side by side, not on top of each other


def test_all_text_is_at_least_the_figure_font() -> None:
    fig = claims_map_figure(_summary("claims_map_default"), "wolf", "organism")
    heat = fig.data[0]
    assert fig.layout.font.size >= FONT >= 12 and heat.textfont.size >= FONT
    assert all(a.font.size >= FONT for a in fig.layout.annotations)
    labels = [*heat.y, *(t.name for t in fig.data[1:])]
    assert not any("<sup>" in label or "<sub>" in label for label in labels)


def test_replot_redraws_a_recorded_map_without_training(tmp_path: Path, monkeypatch) -> None:
    import interp.study.plots as plots

    drawn, save = [], plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, *a, **k: drawn.append(fig) or save(fig, *a, **k))
    cfg = replot.ReplotConfig(results=RESULTS / "claims_map_tied.json", out=tmp_path / "map", png=False)
    stem = replot.main(cfg)
    page = (tmp_path / "map.html").read_text()
    # the marks are read from the figure, not from the HTML (plotly escapes "§" there unless orjson is in)
    assert stem == tmp_path / "map" and "organism-tied" in page and _marked_in_figure(drawn[0])
    assert replot.config_path(cfg) == RESULTS / "claims_map_tied.config.json"
    run = replot.ReplotConfig(results=tmp_path / "run" / "results.json")
    assert replot.config_path(run).name == "config.json"
    assert replot.figure_stem(run) == tmp_path / "run" / "figures" / "claims_map"


def test_replot_refuses_what_is_not_a_map(tmp_path: Path) -> None:
    from interp import InterpError

    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InterpError, match="no claims map"):
        replot.main(replot.ReplotConfig(results=tmp_path / "x.json"))
    with pytest.raises(InterpError, match="--results"):
        replot.main(replot.ReplotConfig(results=tmp_path / "missing.json"))
