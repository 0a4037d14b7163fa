"""Reports and docs as files a reader opens: tables render (one column count per table), every relative
link resolves, numbers are prose (no raw dicts), stage times stay true on a rerun, and PNGs are written
where a browser for kaleido exists."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from interp.study import report as R
from interp.study.prose import stage_times_text
from interp.study.stage_times import StageClock

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "interp" / "organism" / "results"
RECORDED = sorted(RESULTS.glob("*/report.md"))
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "interp" / "organism" / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def cells(line: str) -> int:
    """Columns of a markdown table row: pipes not escaped by a backslash, minus the outer two."""
    return len(re.findall(r"(?<!\\)\|", line.strip())) - 1


def tables(md: str) -> list[list[str]]:
    """Every markdown table (consecutive lines starting with `|`) outside fenced code blocks."""
    out, current, fenced = [], [], False
    for line in md.splitlines():
        fenced ^= line.lstrip().startswith("```")
        if not fenced and line.lstrip().startswith("|"):
            current.append(line)
        elif current:
            out, current = out + [current], []
    return out + ([current] if current else [])


def bad_tables(md: str) -> list[str]:
    return [t[0] for t in tables(md) if len({cells(line) for line in t}) != 1]


def report_from_recorded(run: Path) -> str:
    """report.md's blocks rebuilt from a recorded run's results.json, as reproduce writes them (the stages
    that ran: a run of some stages only records those)."""
    res = json.loads((run / "results.json").read_text())
    trait = json.loads((run / "config.json").read_text())["trait"]
    blocks = R.claims_blocks(res["claims"]) + R.rank_blocks(res, trait) + R.full_ft_blocks(res, trait)
    if "context_matrix" in res:
        blocks += R.context_blocks(
            {"context_matrix": res["context_matrix"], "systems": res["context_systems"]}, trait
        )
    if "localization" in res:
        blocks += R.localization_blocks(
            {"localization": res["localization"], **res["localization_endpoints"]}, trait
        )
    if "patching" in res:
        blocks += R.patching_blocks(res["patching"])
    if "alignment" in res:
        blocks += R.alignment_blocks({"alignment": res["alignment"], **res["alignment_summary"]}, trait)
    blocks += R.divergence_blocks(res["divergence"], trait) if "divergence" in res else []
    blocks += R.beyond_blocks(res["beyond"], trait) if "beyond" in res else []
    return R.to_markdown(blocks, {})


@pytest.mark.parametrize("run", [p.parent for p in RECORDED], ids=lambda p: p.name)
def test_a_report_rebuilt_from_recorded_results_has_whole_tables_and_no_raw_dicts(run: Path) -> None:
    md = report_from_recorded(run)
    assert len(tables(md)) >= 4 and bad_tables(md) == []
    assert "{'" not in md and "positive lift: [" not in md, "a raw dict or list in the prose"


@pytest.mark.parametrize("path", RECORDED + DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_table_has_one_column_count(path: Path) -> None:
    assert bad_tables(path.read_text()) == []


@pytest.mark.parametrize("path", RECORDED + DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    links = [u.split("#")[0] for u in LINK.findall(path.read_text()) if "://" not in u and u[0] != "#"]
    missing = [u for u in links if u and not (path.parent / u).exists()]
    assert missing == []


def test_a_pipe_inside_a_cell_cannot_add_a_column() -> None:
    md = R.to_markdown([("table", ["a", "P | b"], [["1", "x|y"]])], {})
    assert bad_tables(md) == [] and cells(md.splitlines()[0]) == 2


def test_the_table_check_sees_a_broken_table() -> None:
    assert bad_tables("| a | b | c |\n|---|---|\n| 1 | 2 | 3 |\n") == ["| a | b | c |"]


def test_figure_markdown_links_only_what_exists() -> None:
    assert R.figure_markdown("f", "figures", have_png=True, have_html=False) == "![f](figures/f.png)"
    both = R.figure_markdown("f", "figures", have_png=True)
    assert "(figures/f.png)" in both and "(figures/f.html)" in both


def _stage(clock: StageClock, name: str, write: Path | None) -> None:
    with clock.stage(name):
        time.sleep(0.06)
        if write is not None:
            write.write_text("done")


def test_a_cached_stage_reports_the_time_it_took_when_computed(tmp_path: Path) -> None:
    first = StageClock(tmp_path)
    _stage(first, "sweep", tmp_path / "job.json")
    _stage(first, "lens", None)  # a stage that writes nothing still counts as computed on a first run
    (tmp_path / "results.json").write_text("{}")
    first.save()
    assert not any(t.cached for t in first.times.values())
    again = StageClock(tmp_path)
    with again.stage("sweep"):
        pass
    _stage(again, "lens", tmp_path / "lens.safetensors")
    sweep, lens = again.times["sweep"], again.times["lens"]
    assert sweep.cached and sweep.computed_s == first.times["sweep"].seconds >= 0.1
    assert not lens.cached and lens.computed_s == lens.seconds
    text = stage_times_text(again.times, 0.1)
    assert f"sweep {sweep.computed_s:.1f} s (cached; 0.0 s in this run)" in text
    assert "1 of 2 stages cached" in text and "{" not in text


def test_a_rerun_without_a_ledger_says_the_time_was_not_recorded(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")  # a run directory from before stage times were kept
    clock = StageClock(tmp_path)
    with clock.stage("sweep"):
        pass
    assert clock.times["sweep"].cached and clock.times["sweep"].computed_s is None
    assert "whose times were not recorded: sweep." in stage_times_text(clock.times, 0.0)
    assert StageClock(tmp_path, force=True).force


def test_the_report_stage_writes_the_main_jobs_report_from_its_stages_results(tmp_path, monkeypatch) -> None:
    """report.run: report.md, report.html, results.json and the stage times from the stages' results (here the
    recorded main job's rank sweep); results.json keeps the sweep's numbers as they were and judges its claims."""
    import interp.study.plots.heatmaps as plots
    from interp.stages import report
    from interp.stages.reproduce import ReproduceConfig

    monkeypatch.setattr(plots, "_PNG_WORKS", False)  # HTML only: keep the test fast
    recorded = json.loads((RESULTS / "reproduce" / "results.json").read_text())
    sweep = {k: recorded[k] for k in ("rank_sweep", "full_ft", "control", "filter_pass")}
    clock = StageClock(tmp_path)
    with clock.stage("rank_sweep"):
        pass
    results = {"rank_sweep": sweep, "best_rank": recorded["best_rank"]}
    root = report.run(report.MainReport(ReproduceConfig(out=tmp_path), tmp_path, results, clock, 1.0))
    written = json.loads((root / "results.json").read_text())
    assert root == tmp_path and {k: written[k] for k in sweep} == sweep
    assert written["claims"]["lora_transfer"] == recorded["claims"]["lora_transfer"]
    assert "rank_sweep" in json.loads((root / "stage_times.json").read_text())
    md = (root / "report.md").read_text()
    assert "figures/rank_sweep.html" in md and bad_tables(md) == [] and (root / "report.html").exists()


def _browser() -> str | None:
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 - no choreographer, or it cannot look: treated as no browser
        return None


def test_png_export_writes_a_png_where_a_browser_exists(tmp_path: Path) -> None:
    """Skipped without a browser, unless INTERP_REQUIRE_PNG=1 (CI installs chromium and sets it)."""
    import interp.study.plots.heatmaps as heatmaps
    from interp.study.plots import rank_sweep_figure, save_figures

    if _browser() is None and os.environ.get("INTERP_REQUIRE_PNG") != "1":
        pytest.skip("no browser for kaleido here (make install puts Debian's chromium in where it can)")
    heatmaps._PNG_WORKS = None
    row = {
        "rank": 4,
        "lr": 3e-3,
        "mention_rate": 0.2,
        "ci": [0.1, 0.3],
        "p_first_token": 0.2,
        "p_ci": [0.1, 0.3],
    }
    control = {"mention_rate": 0.1, "ci": [0.05, 0.15], "p_first_token": 0.1, "p_ci": [0.05, 0.15]}
    fig = rank_sweep_figure({"rank_sweep": [row], "full_ft": [], "control": control}, "wolf")
    written = save_figures({"rank_sweep": fig}, tmp_path)
    png = tmp_path / "rank_sweep.png"
    assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
