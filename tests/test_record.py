"""Recording a run (`interp.study.record`): a record keeps JSON, markdown and PNGs, its report.md is the one
`figure_markdown` writes for a record, and a figure it would lose is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from interp import InterpError
from interp.study.record import record_run
from interp.study.report import figure_markdown, to_markdown

BLOCKS = [
    ("h1", "A run"),
    ("p", "Text with a [link](other.md)."),
    ("fig", "a"),
    ("p", "Between."),
    ("fig", "b"),
]


def report(html: bool) -> str:
    return to_markdown(BLOCKS, {n: figure_markdown(n, "figures", True, html) for n in ("a", "b")})


def finished_run(root: Path) -> Path:
    run = root / "run"
    (run / "figures").mkdir(parents=True)
    (run / "tensors").mkdir()
    (run / "jobs" / "student").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "results.json").write_text('{"x": 1}')
    (run / "report.md").write_text(report(html=True))
    for name in ("a", "b"):
        (run / "figures" / f"{name}.png").write_bytes(b"png")
        (run / "figures" / f"{name}.html").write_text("<html>")
    (run / "figures" / "plotly.min.js").write_text("js")
    (run / "tensors" / "grid.safetensors").write_bytes(b"t")
    (run / "jobs" / "student" / "result.json").write_text("{}")
    return run


def test_a_record_keeps_json_markdown_and_pngs(tmp_path: Path) -> None:
    run = finished_run(tmp_path)
    out = tmp_path / "docs" / "record"
    written = record_run(run, out)
    kept = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert kept == ["config.json", "figures/a.png", "figures/b.png", "report.md", "results.json"]
    assert sorted(written) == sorted(out / k for k in kept)
    assert (out / "report.md").read_text() == report(html=False)  # as figure_markdown writes a record's
    assert "[link](other.md)" in (out / "report.md").read_text()


def test_a_figure_without_its_png_is_refused(tmp_path: Path) -> None:
    run = finished_run(tmp_path)
    (run / "figures" / "b.png").unlink()
    with pytest.raises(InterpError, match=r"figures with no PNG \(b\)"):
        record_run(run, tmp_path / "record")
    assert not (tmp_path / "record").exists()


def test_an_existing_record_is_kept_unless_overwritten(tmp_path: Path) -> None:
    run = finished_run(tmp_path)
    out = tmp_path / "record"
    out.mkdir()
    (out / "old.json").write_text("{}")
    with pytest.raises(InterpError, match="already exists"):
        record_run(run, out)
    assert (out / "old.json").exists()
    record_run(run, out, overwrite=True)
    assert not (out / "old.json").exists() and (out / "results.json").exists()
    with pytest.raises(InterpError, match="not a finished run directory"):
        record_run(tmp_path / "nowhere", tmp_path / "other")
