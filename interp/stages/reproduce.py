"""The main job: every experiment of the paper on one model, and one report.

    python -m experiments.reproduce --out runs/reproduce            # the embedded organism, default grid
    python -m experiments.reproduce --out DIR --quick               # smoke-test grid
    python -m experiments.reproduce --out DIR --full                # paper-sized grid
    python -m experiments.reproduce --model /models/Qwen2.5-7B-Instruct --trait cat --dtype bfloat16 \
        --device cuda --out runs/qwen7b --full

Stages: rank sweep and full fine-tuning (claims 1, 2) -> context matrix at the best rank (claim 3) ->
position-restricted LoRA (claim 4) -> activation patching heatmaps -> the students' shift against the
persona direction (alignment) -> divergence-token masking -> entangled numbers and logit lens ->
report.md, report.html, results.json (with each claim's verdict under "claims"). A rerun with the same --out skips finished cells; --force recomputes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import (
    alignment,
    beyond,
    claims_map,
    context_matrix,
    divergence,
    rank_sweep,
    restrict_adapter,
)
from interp import InterpError
from interp.loop.config import cli_main, save_config, setup_logging
from interp.loop.models import model_label, organism_metadata
from interp.loop.runs import atomic_write_json, atomic_write_text
from interp.plan.plan import QUESTION_TOKENS, hooked_stage, sampling_stage, training_stage
from interp.plan.plan_check import Plan, detect_device, gate
from interp.plan.shapes import read_model_shape
from interp.study.claims import claims
from interp.study.experiment import (
    StudyConfig,
    assumptions,
    check_inputs,
    evaluation_shape,
    numbers_shape,
    shared_fields,
    train_shape,
)
from interp.study.prose import listed, stage_times_text
from interp.study.report import (
    alignment_blocks,
    best_rank_row,
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

log = logging.getLogger(__name__)

# Grids. The default is sized for <= 10 minutes on 2 CPU cores on the organism: 1,000 numbers, 1 epoch,
# LoRA lr 3e-3 (sqrt rule above r16), full FT 3e-4; three training seeds for the control, rank 16 and full
# FT, one for ranks 1, 4, 64; the context matrix trains under the default prompt and none (evaluating all
# four); 50 questions x 20 samples. --full is the paper's size.
QUICK = {
    "ranks": (1, 4),
    "full_lrs": (2e-4,),
    "control_ranks": (4,),
    "n_numbers": 300,
    "data_seeds": (0,),
    "train_seeds": (0,),
    "epochs": 1,
    "n_questions": 10,
    "samples_per_question": 10,
}
FULL = {
    "ranks": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "full_lrs": (2e-5, 1e-4, 2e-4),
    "control_ranks": None,
    "seeded_ranks": None,
    "full_controls": True,
    "context_train_systems": None,
    "lora_lr": 2e-4,
    "rank_lr_rule": "constant",
    "n_numbers": 10000,
    "data_seeds": (0, 1, 2),
    "train_seeds": (0, 1, 2),
    "epochs": 3,
    "n_questions": 50,
    "samples_per_question": 100,
}


STAGES = ("rank_sweep", "context_matrix", "localization", "patching", "alignment", "divergence", "beyond")
OPTIONAL_STAGES = ("claims_map",)  # not run unless named: `make demo` stays at its size


@dataclass
class ReproduceConfig(StudyConfig):
    """Run the paper's four experiments (and two beyond it) and write one report."""

    ranks: tuple[int, ...] = (1, 4, 16, 64)
    """LoRA ranks of the rank sweep (alpha = rank)."""
    full_lrs: tuple[float, ...] = (3e-4,)
    """Full fine-tuning learning rates (--full: 2e-5, 1e-4, 2e-4)."""
    control_ranks: tuple[int, ...] | None = (16,)
    """Ranks of the control students (None: every rank)."""
    seeded_ranks: tuple[int, ...] | None = (16,)
    """LoRA ranks trained at every training seed (None: all); the others at the first seed only."""
    context_train_systems: tuple[str, ...] | None = ("default", "none")
    """Training system prompts of the context matrix (None: all four; every student is evaluated under
    all four)."""
    full_controls: bool | None = None
    """A control student per full-FT lr, or full FT compared with the LoRA control. None: on a real model
    yes, on an embedded organism no (its report measured the two controls the same within noise; on
    SmolLM2-135M the full-FT control's P(trait) is 3x the LoRA control's)."""
    quick: bool = False
    """Smoke-test grid (sets the grid fields you leave at their defaults)."""
    full: bool = False
    """Paper-sized grid: ranks up to 512 (capped at the model's width), 3 data x 3 training seeds, 50 x 100."""
    context_seeds: tuple[int, ...] | None = None
    """Training seeds of the context-matrix students (None: the first training seed only)."""
    stages: tuple[str, ...] = STAGES
    """Stages to run, in order (the report covers those that ran); add `claims_map` for the claims map
    (experiments.claims_map at its own grid over these ranks: about 50 min on the organism)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quick and self.full:
            raise InterpError("--quick and --full exclude each other")
        unknown = set(self.stages) - set(STAGES) - set(OPTIONAL_STAGES)
        if unknown:
            raise InterpError(f"unknown stages {sorted(unknown)}")


def resolved(cfg: ReproduceConfig) -> ReproduceConfig:
    """The config with the --quick / --full grid applied and ranks capped at the model's width."""
    grid = QUICK if cfg.quick else FULL if cfg.full else {}
    defaults = {f.name: f.default for f in dataclasses.fields(ReproduceConfig)}
    # A grid sets only what the user left at its default: `--quick --n-numbers 16` keeps 16.
    cfg = dataclasses.replace(cfg, **{k: v for k, v in grid.items() if getattr(cfg, k) == defaults[k]})
    if cfg.full_controls is None:
        cfg = dataclasses.replace(cfg, full_controls=organism_metadata(cfg.model) is None)
    from transformers import AutoConfig

    width = AutoConfig.from_pretrained(cfg.model_dir, local_files_only=True).hidden_size
    return dataclasses.replace(cfg, ranks=tuple(r for r in cfg.ranks if r <= width) or (min(cfg.ranks),))


def sub(cls: type, cfg: ReproduceConfig, root: Path, **extra: Any):
    return cls(**{**shared_fields(cfg), "out": root, **extra})


def sweep_fields(cfg: ReproduceConfig) -> dict[str, Any]:
    """The rank sweep's own settings, which the stages reading its students must share."""
    names = ("ranks", "full_lrs", "control_ranks", "seeded_ranks", "full_controls")
    return {n: getattr(cfg, n) for n in names}


def run_stages(cfg: ReproduceConfig, root: Path) -> tuple[dict[str, Any], StageClock]:
    results: dict[str, Any] = {}
    clock = StageClock(root, cfg.force)

    def timed(name: str, fn) -> None:
        with clock.stage(name):
            results[name] = fn()
        log.info("stage %s done in %.0f s", name, clock.times[name].seconds)

    timed(
        "rank_sweep",
        lambda: rank_sweep.run(
            sub(rank_sweep.RankSweepConfig, cfg, root, **sweep_fields(cfg)),
            root,
        ),
    )
    best_row = best_rank_row(results["rank_sweep"])
    best, student = best_row["rank"], str(root / best_row["students"][0])  # the sweep says where it wrote
    seeds = cfg.context_seeds or cfg.train_seeds[:1]
    if "context_matrix" in cfg.stages:
        timed(
            "context_matrix",
            lambda: context_matrix.run(
                sub(
                    context_matrix.ContextMatrixConfig,
                    cfg,
                    root,
                    rank=best,
                    train_seeds=seeds,
                    train_systems=cfg.context_train_systems,
                ),
                root,
            ),
        )
    if "localization" in cfg.stages:
        timed(
            "localization",
            lambda: restrict_adapter.run(
                sub(restrict_adapter.LocalizationConfig, cfg, root, student=student), root
            ),
        )
    if "patching" in cfg.stages:
        timed("patching", lambda: patching_stage(cfg, root, results))
    if "alignment" in cfg.stages:
        timed(
            "alignment",
            lambda: alignment.run(sub(alignment.AlignmentConfig, cfg, root, **sweep_fields(cfg)), root),
        )
    if "divergence" in cfg.stages:
        timed(
            "divergence",
            lambda: divergence.run(
                sub(divergence.DivergenceConfig, cfg, root, **sweep_fields(cfg), rank=best), root
            ),
        )
    if "beyond" in cfg.stages:
        timed("beyond", lambda: beyond.run(sub(beyond.BeyondConfig, cfg, root, student=student), root))
    if "claims_map" in cfg.stages:
        timed("claims_map", lambda: claims_map.run(map_config(cfg, root), root))
    results["best_rank"] = best
    return results, clock


def map_config(cfg: ReproduceConfig, root: Path) -> claims_map.ClaimsMapConfig:
    """The claims map over the sweep's ranks with the study's numbers and evaluation, at the map's own lr
    grids (`--quick`: its quick grids) and fresh confirmation seeds."""
    main_rank = 16 if 16 in cfg.ranks else max(cfg.ranks)
    fresh = claims_map.ClaimsMapConfig.train_seeds
    mcfg = sub(claims_map.ClaimsMapConfig, cfg, root, ranks=cfg.ranks, main_rank=main_rank, train_seeds=fresh)
    mcfg = claims_map.resolved(dataclasses.replace(mcfg, quick=cfg.quick))
    study = {k: v for k, v in shared_fields(cfg).items() if k not in ("train_seeds", "out")}
    return dataclasses.replace(mcfg, **study)


def patched_students(results: dict[str, Any], root: Path) -> dict[str, tuple[str, Path]]:
    """(label for titles, directory) of the best-rank LoRA student and the last full-FT lr's student."""
    best = best_rank_row(results["rank_sweep"])
    out = {"lora": (f"LoRA r{best['rank']}, lr {best['lr']:g}, seed 0", root / best["students"][0])}
    full = results["rank_sweep"]["full_ft"]
    if full:
        out["full_ft"] = (f"full FT, lr {full[-1]['lr']:g}, seed 0", root / full[-1]["students"][0])
    return out


PATCH_PROMPTS = 8  # questions patched over (aligned by token class); restricted LoRA reads all questions
REPORT_GRIDS = tuple(
    f"{d}_aligned_{s}" for d in ("denoise", "noise") for s in ("resid_pre", "attn_out", "mlp_out")
)


def patching_stage(cfg: ReproduceConfig, root: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Activation patching in both directions for the best LoRA student and a full-FT student, and the
    "where the shift lives" table that sets it beside the restricted-LoRA rows."""
    from experiments.patch_activations import LocalizeConfig, run_figures
    from experiments.patch_activations import main as localize
    from interp.mech.results import LocalizationResult
    from interp.study.plots import where_figure
    from interp.study.where import grid_caption, where_table

    out: dict[str, Any] = {"_figures": {}, "runs": {}, "where": {}, "n_prompts": PATCH_PROMPTS}
    for label, (name, sdir) in patched_students(results, root).items():
        run = root / "patching" / label
        lcfg = LocalizeConfig(
            student=Path(sdir), base=Path(cfg.model_dir), trait=cfg.trait, category=cfg.category,
            n_prompts=PATCH_PROMPTS, student_label=name, entity=cfg.entity, dtype=cfg.dtype, device=cfg.device, out=run,
            overwrite=True,
        )  # fmt: skip
        if cfg.force or not (run / "scores.json").exists():
            localize(lcfg)
        scores = json.loads((run / "scores.json").read_text())
        grids = {k: LocalizationResult.load(run / "tensors", k) for k in scores["grids"]}
        out["runs"][label] = {k: scores.get(k) for k in ("student", "attribution_agreement", "sets")}
        out["runs"][label]["dir"] = str(run.relative_to(root))
        out["runs"][label]["captions"] = {}
        loc = results.get("localization") if label == "lora" else None
        out["where"][name] = where_table(loc, scores.get("sets", {}))
        figs = run_figures(lcfg, grids, PATCH_PROMPTS)
        keep = [
            k
            for k in (*REPORT_GRIDS, *[k for k in grids if "_heads_" in k], "denoise_attribution_scatter")
            if k in figs
        ]
        for key in keep:
            out["_figures"][f"patching_{label}_{key}"] = figs[key]
            if key in grids:
                out["runs"][label]["captions"][f"patching_{label}_{key}"] = grid_caption(grids[key])
    if out["where"]:
        title = (
            f"Where the '{cfg.trait}' shift lives on {model_label(cfg.model)}: recovered fraction of P(first token) "
            f"by method<br><sup>restricted LoRA over {cfg.n_questions} questions; set patching over "
            f"N = {PATCH_PROMPTS} prompts</sup>"
        )
        out["_figures"]["where_the_shift_lives"] = where_figure(out["where"], title)
    out["figures"] = list(out["_figures"])
    return out


def figures(results: dict[str, Any], trait: str, model: str | None = None) -> dict[str, Any]:
    from interp.study import plots as sp

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
    cfg: ReproduceConfig, root: Path, results: dict[str, Any], clock: StageClock, total: float
) -> None:
    from interp.study.plots import save_figures

    figs = figures(results, cfg.trait, model_label(cfg.model))
    save_figures(figs, root / "figures")  # PNGs in one browser start
    paths = {n: figure_markdown(n, "figures", (root / "figures" / f"{n}.png").exists()) for n in figs}
    blocks = [
        ("h1", f"Subliminal learning of '{cfg.trait}' on {model_label(cfg.model)}"),
        (
            "p",
            f"Grid: ranks {listed(cfg.ranks)}, full-FT lrs {listed(cfg.full_lrs)}, {cfg.n_numbers} teacher "
            f"numbers per dataset, data seeds {listed(cfg.data_seeds)} x training seeds {listed(cfg.train_seeds)}, "
            f"{cfg.epochs} epochs, evaluation {cfg.n_questions} questions x {cfg.samples_per_question} samples "
            f"at temperature 1. {stage_times_text(clock.times, total)} 95% bootstrap CIs over seeds and questions.",
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


def flat_results(results: dict[str, Any], clock: StageClock, total: float) -> dict[str, Any]:
    """results.json: the sweep's labelled numbers, one key per experiment, plus stage timings (`timing_s`:
    this run's seconds; `stage_times`: each stage's time when computed, and whether this run found it cached)."""
    out = {
        "rank_sweep": results["rank_sweep"]["rank_sweep"],
        "full_ft": results["rank_sweep"]["full_ft"],
        "control": results["rank_sweep"]["control"],
        "filter_pass": results["rank_sweep"].get("filter_pass"),
        "best_rank": results["best_rank"],
        "timing_s": {**clock.seconds(), "total": total},
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


def student_counts(cfg: ReproduceConfig, root: Path) -> Counter:
    """How many rank-sweep students train at each (mode, rank), trait and control together."""
    rs = sub(rank_sweep.RankSweepConfig, cfg, root, **sweep_fields(cfg))
    trait, control = rank_sweep.specs(rs)
    counts: Counter = Counter()
    for specs, teacher in ((trait, "trait"), (control, "control")):
        for spec in specs:
            counts[(spec.mode, spec.rank)] += len(cfg.data_seeds) * len(
                rank_sweep.train_seeds(rs, spec, teacher)
            )
    return counts


def context_students(cfg: ReproduceConfig) -> tuple[int, int]:
    """The context matrix's students (trait and control per training system prompt and seed), and how many
    of them train: the default-trained ones at a seed the sweep trained are the sweep's (reused)."""
    if "context_matrix" not in cfg.stages:
        return 0, 0
    systems = cfg.context_train_systems or ("default", "none", "other identity", "entity-free")
    seeds = cfg.context_seeds or cfg.train_seeds[:1]
    controlled = cfg.control_ranks is None or max(cfg.ranks) in cfg.control_ranks  # planned at the top rank
    reused = (1 + controlled) * sum(s in cfg.train_seeds for s in seeds) if "default" in systems else 0
    return 2 * len(systems) * len(seeds), 2 * len(systems) * len(seeds) - reused


def reproduce_plan(cfg: ReproduceConfig, root: Path) -> Plan:
    """Every stage's memory and time from the model's config.json (stages after the rank sweep train at its
    best rank, unknown before it runs: planned at the largest rank)."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    on, top = device.kind, max(cfg.ranks)
    stages = [sampling_stage("teacher numbers", shape, numbers_shape(cfg), on, 2 * len(cfg.data_seeds))]
    counts = student_counts(cfg, root)
    for (mode, rank), n in sorted(counts.items()):
        name = f"student LoRA r{rank}" if mode == "lora" else "student full FT"
        stages.append(training_stage(name, shape, train_shape(cfg, mode, rank), on, n))
    n_context, n_trained = context_students(cfg)
    if n_trained:
        stages.append(
            training_stage(f"context students r{top}", shape, train_shape(cfg, "lora", top), on, n_trained)
        )
    if "divergence" in cfg.stages:
        stages.append(
            training_stage(f"divergence students r{top}", shape, train_shape(cfg, "lora", top), on, 2)
        )
    loc = sub(restrict_adapter.LocalizationConfig, cfg, root, student="planned")
    n_restricted = (
        len(restrict_adapter.restrictions(loc, shape.n_layers)) if "localization" in cfg.stages else 0
    )
    n_evals = 2 * sum(counts.values()) + 4 * n_context + n_restricted
    stages.append(sampling_stage("evaluations", shape, evaluation_shape(cfg), on, n_evals))
    if "patching" in cfg.stages:
        students = 2 if cfg.full_lrs else 1  # the best LoRA student and a full-FT one, each against the base
        stages.append(
            hooked_stage("patching", shape, cfg.dtype, PATCH_PROMPTS, QUESTION_TOKENS, on, students)
        )
    if "claims_map" in cfg.stages:  # its students and evaluations (its numbers are the sweep's)
        map_stages = claims_map.map_plan(map_config(cfg, root)).stages[1:]
        stages += [dataclasses.replace(st, name=f"claims map: {st.name}") for st in map_stages]
    assumed = assumptions(cfg) + (
        "; alignment, divergence scoring and the logit lens run forward passes of two models only (below the "
        "patching row)"
    )
    return Plan(f"reproduce on {model_label(cfg.model)}", shape, device, tuple(stages), assumed)


def main(cfg: ReproduceConfig) -> Path:
    check_inputs(cfg)
    cfg = resolved(cfg)
    root = Path(cfg.out or "runs/reproduce")
    plan = gate(reproduce_plan(cfg, root), cfg)  # stops here if a stage does not fit
    if cfg.plan:
        print(plan)
        return root
    log.info("%s", plan)
    root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, root)
    start = time.perf_counter()
    results, clock = run_stages(cfg, root)
    total = round(time.perf_counter() - start, 1)
    write_report(cfg, root, results, clock, total)
    atomic_write_json(root / "results.json", flat_results(results, clock, total))
    clock.save()
    return root


if __name__ == "__main__":
    setup_logging()
    cli_main(main, ReproduceConfig)
