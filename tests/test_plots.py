"""Heatmaps and the labelled result type: class bands, HTML always, PNG fallback, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import interp.study.plots as plots
import interp.study.plots.heatmaps as heatmap_module
from interp import InterpError
from interp.mech.results import LocalizationResult
from interp.study.report import figure_markdown, to_markdown


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
    assert len(fig.layout.shapes) == 5 + 1  # one coloured band cell per position, one bracket over the entity
    assert list(fig.layout.xaxis.ticktext)[4] == "4:↵"  # a newline token shows as a visible mark
    assert [a.text for a in fig.layout.annotations] == ["entity 'Zor' (2 tokens)"]
    assert fig.layout.legend.y > 1.1  # the legend sits above the plot, off the tick labels
    legend = {t.name for t in fig.data if t.type == "scatter"}
    assert legend == {"template", "entity", "user", "assistant_header"}
    assert len(plots.heatmap(_result("layer_class")).layout.shapes) == 0


def test_heatmap_names_its_scale_and_marks_structural_zeros() -> None:
    result = _result("layer_aligned")
    result.identical = torch.tensor([[True] * 5, [False] * 5])
    fig = plots.heatmap(result, "a title", direction="denoise")
    assert (
        "0 = base, 1 = student" in fig.data[0].colorbar.title.text
        and "log p(owl)" in fig.data[0].colorbar.title.text
    )
    assert fig.data[0].text[0] == ("≡",) * 5 or list(fig.data[0].text[0]) == ["≡"] * 5
    assert "structural no-op" in fig.layout.title.text and fig.layout.title.text.startswith("a title")
    swept = _result("layer_aligned")  # noising as a sweep scores it: 0 = recipient (student), 1 = donor
    noise = plots.heatmap(swept, direction="noise")
    assert "shift left" in noise.data[0].colorbar.title.text
    assert "0 = base, 1 = student" in noise.data[0].colorbar.title.text  # one scale for both directions
    assert torch.allclose(torch.tensor(noise.data[0].z), 1 - swept.scores)
    control = plots.heatmap(_result("layer_aligned"), direction="denoise", reference="control")
    assert "0 = control, 1 = student" in control.data[0].colorbar.title.text


def test_long_set_names_wrap_on_the_axis() -> None:
    """Claim 4's set names ("template before header") wrap, so six columns stay readable at 600 px."""
    result = _result("layer_class")
    result.col_labels = ["entity", "template before header", "header without readout", "readout", "user"]
    ticks = list(plots.heatmap(result).layout.xaxis.ticktext)
    assert ticks == ["entity", "template<br>before header", "header without<br>readout", "readout", "user"]


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


def _sweep_row(rank: int | None, lr: float, rate: float) -> dict:
    return {"rank": rank, "lr": lr, "mention_rate": rate, "ci": [rate - 0.01, rate + 0.01],
            "p_first_token": rate, "p_ci": [rate - 0.01, rate + 0.01]}  # fmt: skip


def test_rank_figure_band_has_no_markers_and_the_axis_shows_only_the_swept_ranks() -> None:
    control = {"mention_rate": 0.1, "ci": [0.09, 0.11], "p_first_token": 0.1, "p_ci": [0.09, 0.11]}
    summary = {
        "rank_sweep": [_sweep_row(r, 3e-3, 0.2) for r in (1, 4, 16, 64)],
        "full_ft": [_sweep_row(None, 3e-4, 0.15)],
        "control": control,
    }
    fig = plots.rank_sweep_figure(summary, "wolf")
    bands = [t for t in fig.data if t.fill == "toself"]
    assert bands and all(t.mode == "lines" for t in bands)
    assert list(fig.layout.xaxis.tickvals) == [1, 4, 16, 64]
    assert [t.split("<br>")[0] for t in fig.layout.xaxis.ticktext] == ["r1", "r4", "r16", "r64"]


def test_report_markdown_shows_the_png_and_links_the_interactive_html() -> None:
    md = to_markdown([("fig", "rank_sweep"), ("fig", "other")], {
        "rank_sweep": figure_markdown("rank_sweep", "figures", have_png=True),
        "other": figure_markdown("other", "figures", have_png=False),
    })  # fmt: skip
    assert "![rank_sweep](figures/rank_sweep.png)" in md and "(figures/rank_sweep.html)" in md
    assert "other.png" not in md and "(figures/other.html)" in md


def test_the_context_matrix_draws_both_metrics_with_cis_and_never_saturates_a_ci() -> None:
    from interp.study.plots import context_matrix_figure

    cells = [
        {
            "train_system": t,
            "eval_system": e,
            "seeds": 3,
            "mention_diff": 0.02 * i,
            "mention_diff_ci": [0.02 * i - 0.018, 0.02 * i + 0.02],
            "p_trait_diff": 0.001 * i,
            "p_trait_diff_ci": [0.001 * i - 0.0005, 0.001 * i + 0.0007],
            "per_question_mention": [0.0] * 50,
        }
        for i, (t, e) in enumerate((t, e) for t in ("default", "none") for e in ("default", "none"))
    ]
    fig = context_matrix_figure(cells, "cat")
    mention, p_trait = fig.data
    for heat, value, ci in (
        (mention, "mention_diff", "mention_diff_ci"),
        (p_trait, "p_trait_diff", "p_trait_diff_ci"),
    ):
        assert [x for row in heat.z for x in row] == [
            c[value] for c in cells
        ]  # the figure's metric is the table's
        assert heat.zmax >= max(c[ci][1] for c in cells) and heat.zmin <= min(c[ci][0] for c in cells)
        assert all("[" in t for row in heat.text for t in row)  # every cell shows its CI
    assert (
        "mention-rate lift" in mention.colorbar.title.text and "P(trait) lift" in p_trait.colorbar.title.text
    )
    assert "3 seed(s), 50 questions" in fig.layout.title.text


def test_every_rank_sweep_point_says_its_lr_and_seeds() -> None:
    from interp.study.plots import rank_sweep_figure

    def row(rank, lr, seeds):
        return {
            "rank": rank,
            "lr": lr,
            "seeds": seeds,
            "mention_rate": 0.1,
            "ci": [0.0, 0.2],
            "p_first_token": 0.1,
            "p_ci": [0.0, 0.2],
        }

    control = {**row(0, 0, 3), "per_question_mention": [0.1] * 50}
    fig = rank_sweep_figure(
        {"rank_sweep": [row(4, 3e-3, 3), row(64, 1.5e-3, 1)], "full_ft": [], "control": control}, "cat"
    )
    ticks = fig.layout.xaxis.ticktext
    assert (
        "lr 0.003" in ticks[0]
        and "3 seed(s)" in ticks[0]
        and "lr 0.0015" in ticks[1]
        and "1 seed(s)" in ticks[1]
    )
    assert "3 seed(s); 50 questions" in fig.layout.title.text
