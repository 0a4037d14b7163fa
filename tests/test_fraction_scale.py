"""One scale for every recovered fraction: 0 = the reference (base or control), 1 = the student, in the
grids, the heatmaps' colour bars, the where table and the where figure alike; noising reads as the shift
left. The expected values are computed here from the raw metric, not from the code under test."""

from __future__ import annotations

import pytest
import torch

from interp import InterpError
from interp.mech.results import LocalizationResult, normalise, on_student_scale
from interp.study.plots import heatmap, where_figure
from interp.study.plots.where import fraction_label
from interp.study.where import ALL, grid_caption, where_blocks, where_metric

STUDENT, CONTROL = -4.0, -5.0  # log p(owl) of the unpatched student and of the reference


def noising_grid() -> LocalizationResult:
    """A noising sweep (reference into student) as the sweep scores it: 0 = recipient (the student),
    1 = donor (the reference). Cells: a no-op, a patch that removes the whole shift, one that removes 90%."""
    raw = torch.tensor([[STUDENT, CONTROL, -4.9]])
    return LocalizationResult(
        scores=normalise(raw, STUDENT, CONTROL),
        raw=raw,
        kind="layer_class",
        site="resid_pre",
        metric="log p(owl)",
        layers=[3],
        col_labels=["user", "entity", "template"],
        col_classes=["user", "entity", "template"],
        recipient_metric=STUDENT,
        donor_metric=CONTROL,
        config={"direction": "noise"},
    )


def shift_left(raw: torch.Tensor) -> torch.Tensor:
    return (raw - CONTROL) / (STUDENT - CONTROL)


def test_noising_reads_as_the_shift_left_and_denoising_is_unchanged() -> None:
    grid = noising_grid()
    assert torch.allclose(grid.scores, torch.tensor([[0.0, 1.0, 0.9]]))  # the sweep's own scale
    on = on_student_scale(grid, "noise", "control")
    assert torch.allclose(on.scores, shift_left(grid.raw))  # no-op 1, whole shift removed 0
    assert on.scale == "0 = control, 1 = student" and torch.equal(on.raw, grid.raw)
    assert on_student_scale(on, "noise", "control") is on  # converting twice changes nothing
    assert torch.equal(on_student_scale(grid, "denoise").scores, grid.scores)
    with pytest.raises(InterpError, match="direction"):
        on_student_scale(grid, "noising")


def test_heatmap_colour_bar_names_the_metric_and_scale_of_the_cells_it_draws() -> None:
    fig = heatmap(noising_grid(), "t", direction="noise", reference="control")
    bar = fig.data[0].colorbar.title.text
    assert "log p(owl)" in bar and "shift left" in bar and "0 = control, 1 = student" in bar
    assert torch.allclose(torch.tensor(fig.data[0].z), shift_left(noising_grid().raw))
    denoise = heatmap(noising_grid(), direction="denoise", reference="control").data[0].colorbar.title.text
    assert "shift recovered" in denoise and "0 = control, 1 = student" in denoise


def test_a_noising_caption_names_the_cell_that_removes_the_shift() -> None:
    on = on_student_scale(noising_grid(), "noise", "control")
    text = grid_caption(on)
    assert "'entity'" in text and "shift left 0.00" in text
    assert "cells that leave under 0.5 of the shift lie at entity, template." in text


def _cell(v: float, w: float = 0.02) -> dict:
    return {"recovered_fraction": v, "ci": [v - w, v + w]}


TABLES = {
    "LoRA r16": [
        {
            "set": "entity",
            "only": _cell(0.0),
            "denoise": _cell(0.01),
            "except": _cell(0.97),
            "noise": _cell(1.03),
        },
        {
            "set": "readout",
            "only": _cell(0.8),
            "denoise": _cell(1.0),
            "except": _cell(0.1),
            "noise": _cell(0.0),
        },
        {"set": ALL, "only": None, "denoise": _cell(1.0, 0), "except": None, "noise": _cell(0.0, 0)},
    ],
    "full FT": [
        {"set": "readout", "only": None, "denoise": _cell(0.92), "except": None, "noise": _cell(0.06)},
        {"set": ALL, "only": None, "denoise": _cell(0.92, 0), "except": None, "noise": _cell(0.06, 0)},
    ],
}


def test_where_figure_reads_the_table_metric_on_one_scale_in_every_column() -> None:
    res = {"where": TABLES, "runs": {"lora": {"sets": {"metric": "P(owl)"}}}, "n_prompts": 8}
    metric, ref = where_metric(res)
    assert (metric, ref) == ("P(owl)", "base")
    fig = where_figure(TABLES, "Where the shift lives", metric, ref)
    label = fraction_label(metric, ref)
    assert label in fig.layout.title.text and "P(first token)" not in fig.layout.title.text
    bar = fig.data[-1].colorbar.title.text
    assert "P(owl)" in bar and "0 = base, 1 = student" in bar
    intro = where_blocks(res)[1][1]
    assert label in intro  # the report's table reads the figure's metric, on its scale
    lora = fig.data[0]
    noise = [i for i, h in enumerate(lora.x) if h.startswith("noise S")]
    assert len(noise) == 1 and "shift left" in lora.x[noise[0]]
    assert lora.z[1][noise[0]] == 0.0 and lora.z[0][noise[0]] == 1.03  # as stored: no flip in the figure
    for trace in fig.data:  # white is the reference in every column, and nothing is clipped
        assert trace.zmin == -trace.zmax and trace.zmax >= max(
            abs(v) for r in trace.z for v in r if v is not None
        )


def test_a_full_ft_student_short_of_one_is_said_in_the_table_and_the_figure() -> None:
    res = {"where": TABLES, "metric": "P(owl)", "n_prompts": 8}
    text = " ".join(b[1] for b in where_blocks(res) if b[0] == "p")
    assert "Patching every position recovers 0.92, not 1: the other 0.08" in text
    assert text.count("Patching every position recovers") == 1  # LoRA's is 1, as constructed
    from interp.stages.patching import where_notes

    notes = where_notes(res)
    assert len(notes) == 1 and notes[0].startswith("full FT: Patching every position recovers 0.92")
    assert notes[0] in where_figure(TABLES, "t", "P(owl)", notes=notes).layout.title.text
