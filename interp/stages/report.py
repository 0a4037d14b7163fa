"""The main job's report: every stage's results as report.md and report.html (with figures/), and
results.json flattened to one key per experiment, with each claim's verdict under "claims".

    run(MainReport(cfg, root, results, clock, total))    # what reproduce calls once its stages ran

writes report.md, report.html and figures/ (`write_report`), results.json (`flat_results`) and the stage
times (stage_times.json) into `root`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.loop.models import model_label
from interp.loop.runs import atomic_write_json, atomic_write_text
from interp.study import plots as sp
from interp.study.claims import claims
from interp.study.experiment import StudyConfig
from interp.study.prose import listed, machine_text, stage_times_text
from interp.study.report import (
    alignment_blocks,
    beyond_blocks,
    claims_blocks,
    claims_map_blocks,
    context_blocks,
    divergence_blocks,
    figure_markdown,
    full_ft_blocks,
    localization_blocks,
    patching_blocks,
    rank_blocks,
    to_html,
    to_markdown,
)
from interp.study.stage_times import StageClock


def figures(results: dict[str, Any], trait: str, model: str | None = None) -> dict[str, Any]:
    """Every stage's figure by name, the patching stage's own figures included (taken out of its results)."""
    figs = {"rank_sweep": sp.rank_sweep_figure(results["rank_sweep"], trait)}
    if "context_matrix" in results:
        figs["context_matrix"] = sp.context_matrix_figure(results["context_matrix"]["context_matrix"], trait)
    if "localization" in results:
        figs["localization"] = sp.localization_figure(results["localization"]["localization"], trait)
    if "alignment" in results:
        figs["alignment"] = sp.alignment_figure(results["alignment"], trait)
    if "divergence" in results:
        figs["divergence"] = sp.divergence_figure(results["divergence"], trait)
    if "beyond" in results:
        figs["logit_lens"] = sp.logit_lens_figure(results["beyond"]["logit_lens"], trait)
    if "claims_map" in results:
        figs["claims_map"] = sp.claims_map_figure(results["claims_map"], trait, model)
    figs.update(results.get("patching", {}).pop("_figures", {}))
    return figs


def write_report(
    cfg: StudyConfig,
    root: Path,
    results: dict[str, Any],
    clock: StageClock,
    total: float,
    matmul_gflops: float | None = None,
) -> None:
    """report.md, report.html and figures/ under `root`; `cfg` is the main job's (a `ReproduceConfig`: its
    `ranks` and `full_lrs` name the grid)."""
    figs = figures(results, cfg.trait, model_label(cfg.model))
    sp.save_figures(figs, root / "figures")  # PNGs in one browser start
    paths = {n: figure_markdown(n, "figures", (root / "figures" / f"{n}.png").exists()) for n in figs}
    blocks = [
        ("h1", f"Subliminal learning of '{cfg.trait}' on {model_label(cfg.model)}"),
        (
            "p",
            f"Grid: ranks {listed(cfg.ranks)}, full-FT lrs {listed(cfg.full_lrs)}, {cfg.n_numbers} teacher "
            f"numbers per dataset, data seeds {listed(cfg.data_seeds)} x training seeds {listed(cfg.train_seeds)}, "
            f"{cfg.epochs} epochs, evaluation {cfg.n_questions} questions x {cfg.samples_per_question} samples "
            f"at temperature 1. {stage_times_text(clock.times, total)}{machine_text(matmul_gflops, cfg.threads)} "
            "95% bootstrap CIs over seeds and questions."
            + (
                f" The stages after the rank sweep read its LoRA r{results['main_rank']} students (the rank fixed "
                "before the run, not the sweep's largest lift)."
                if results.get("main_rank")
                else ""
            ),
        ),
    ]
    blocks += claims_blocks(claims(results))
    blocks += rank_blocks(results["rank_sweep"], cfg.trait) + full_ft_blocks(results["rank_sweep"], cfg.trait)
    if "context_matrix" in results:
        blocks += context_blocks(results["context_matrix"], cfg.trait)
    if "localization" in results:
        blocks += localization_blocks(results["localization"], cfg.trait)
    blocks += patching_blocks(results.get("patching", {}))
    if "alignment" in results:
        blocks += alignment_blocks(results["alignment"], cfg.trait)
    if "divergence" in results:
        blocks += divergence_blocks(results["divergence"], cfg.trait)
    if "beyond" in results:
        blocks += beyond_blocks(results["beyond"], cfg.trait)
    if "claims_map" in results:
        blocks += claims_map_blocks(results["claims_map"])
    atomic_write_text(root / "report.md", to_markdown(blocks, paths))
    title = f"Subliminal learning: {cfg.trait} on {model_label(cfg.model)}"
    atomic_write_text(root / "report.html", to_html(blocks, figs, title))


def flat_results(
    results: dict[str, Any], clock: StageClock, total: float, matmul_gflops: float | None = None
) -> dict[str, Any]:
    """results.json: the sweep's labelled numbers, one key per experiment, plus stage timings (`timing_s`:
    this run's seconds and the machine's measured fp32 matmul rate; `stage_times`: each stage's time when
    computed, and whether this run found it cached)."""
    out = {
        "rank_sweep": results["rank_sweep"]["rank_sweep"],
        "full_ft": results["rank_sweep"]["full_ft"],
        "control": results["rank_sweep"]["control"],
        "filter_pass": results["rank_sweep"].get("filter_pass"),
        "best_rank": results["best_rank"],
        "main_rank": results.get("main_rank"),
        "timing_s": {**clock.seconds(), "total": total, "matmul_gflops": matmul_gflops},
        "stage_times": clock.to_json(),
    }
    if "context_matrix" in results:
        out["context_matrix"] = results["context_matrix"]["context_matrix"]
        out["context_systems"] = results["context_matrix"]["systems"]
    if "localization" in results:
        out["localization"] = results["localization"]["localization"]
        out["localization_endpoints"] = {
            k: results["localization"][k] for k in ("full", "base", "student", "shift_ci")
        }
    for key in ("patching", "beyond"):
        if key in results:
            out[key] = results[key]
    if "alignment" in results:
        out["alignment"] = results["alignment"]["alignment"]
        out["alignment_summary"] = {k: v for k, v in results["alignment"].items() if k != "alignment"}
    if "divergence" in results:
        out["divergence"] = results["divergence"]
    if "claims_map" in results:
        out["claims_map"] = results["claims_map"]["claims_map"]
    out["claims"] = claims(results)
    return out


@dataclass
class MainReport:
    """What the main job's report is written from: its config, its run directory, every stage's results
    and their times."""

    cfg: StudyConfig
    """The main job's config (a `ReproduceConfig`: its `ranks` and `full_lrs` name the grid)."""
    root: Path
    """The run directory the stages wrote into; the report goes there too."""
    results: dict[str, Any]
    """Each stage's summary by name (its `compute(cfg, root)`), "best_rank" (the sweep's largest lift) and
    "main_rank" (the rank the later stages read)."""
    clock: StageClock
    """The stages' times in this run (and when each was computed)."""
    total: float
    """This run's wall seconds over all stages."""
    matmul_gflops: float | None = None
    """The machine's fp32 matmul rate (512 x 512, the run's threads) measured at the start, so that stage
    times can be compared across machines."""


def run(report: MainReport) -> Path:
    """report.md, report.html, figures/, results.json and stage_times.json in `report.root`; the run
    directory."""
    rate = report.matmul_gflops
    write_report(report.cfg, report.root, report.results, report.clock, report.total, rate)
    flat = flat_results(report.results, report.clock, report.total, rate)
    atomic_write_json(report.root / "results.json", flat)
    report.clock.save()
    return report.root
