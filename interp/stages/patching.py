"""The main job's patching stage: both directions for the main-rank LoRA student and a full-FT one, their grids
and figures (`interp.stages.patch_activations`, under `<out>/patching/<arm>`), and the "where the shift
lives" table that sets set patching beside the restricted-adapter rows.

    patching_stage(cfg, root, results)   # results: the rank sweep's (and the localization's) so far
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp.loop.models import model_label
from interp.mech.results import LocalizationResult, on_student_scale, student_scale
from interp.stages import patch_activations
from interp.study.claims import rank_row
from interp.study.experiment import StudyConfig
from interp.study.plots import where_figure
from interp.study.where import (
    FIGURE,
    beyond_the_stream,
    grid_caption,
    short_of_one,
    where_metric,
    where_table,
)


def patched_students(results: dict[str, Any], root: Path) -> dict[str, tuple[str, Path]]:
    """(label for titles, directory) of the main-rank LoRA student (`results["main_rank"]`) and the last
    full-FT lr's student."""
    row = rank_row(results["rank_sweep"], results["main_rank"])
    out = {"lora": (f"LoRA r{row['rank']}, lr {row['lr']:g}, seed 0", root / row["students"][0])}
    full = results["rank_sweep"]["full_ft"]
    if full:
        out["full_ft"] = (f"full FT, lr {full[-1]['lr']:g}, seed 0", root / full[-1]["students"][0])
    return out


PATCH_PROMPTS = 8  # questions patched over (aligned by token class); restricted LoRA reads all questions
REPORT_GRIDS = tuple(
    f"{d}_aligned_{s}" for d in ("denoise", "noise") for s in ("resid_pre", "attn_out", "mlp_out")
)


def patching_stage(cfg: StudyConfig, root: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Activation patching in both directions for the main-rank LoRA student and a full-FT student, and the
    "where the shift lives" table that sets it beside the restricted-LoRA rows."""
    out: dict[str, Any] = {"_figures": {}, "runs": {}, "where": {}, "n_prompts": PATCH_PROMPTS}
    for label, (name, sdir) in patched_students(results, root).items():
        run = root / "patching" / label
        lcfg = patch_activations.LocalizeConfig(
            student=Path(sdir), base=Path(cfg.model_dir), trait=cfg.trait, category=cfg.category,
            n_prompts=PATCH_PROMPTS, student_label=name, entity=cfg.entity, dtype=cfg.dtype, device=cfg.device, out=run,
            overwrite=True, png=False,
        )  # fmt: skip
        if cfg.force or not (run / "scores.json").exists():
            patch_activations.run(lcfg)
        scores = json.loads((run / "scores.json").read_text())
        grids = {  # a run directory written before the student scale holds noising on the sweep's scale
            k: on_student_scale(LocalizationResult.load(run / "tensors", k), k.split("_", 1)[0])
            for k in scores["grids"]
        }
        out["runs"][label] = {k: scores.get(k) for k in ("student", "attribution_agreement", "sets")}
        out["runs"][label]["dir"] = str(run.relative_to(root))
        out["runs"][label]["captions"] = {}
        loc = results.get("localization") if label == "lora" else None
        out["where"][name] = where_table(loc, scores.get("sets", {}))
        figs = patch_activations.run_figures(lcfg, grids, PATCH_PROMPTS)
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
        metric, ref = where_metric(out)
        out |= {"metric": metric, "reference": ref, "scale": student_scale(ref)}
        out["_figures"][FIGURE] = where_figure(
            out["where"], where_title(cfg.trait, cfg.model, cfg.n_questions), metric, ref, where_notes(out)
        )
    out["figures"] = list(out["_figures"])
    return out


def where_title(
    trait: str, model: str | Path, n_questions: int | None, n_prompts: int | None = PATCH_PROMPTS
) -> str:
    """The where figure's title, naming the methods that ran (None: not run); the figure itself adds the
    metric and scale its cells and colour bar read."""
    methods = [f"restricted LoRA over {n_questions} questions"] if n_questions is not None else []
    methods += [f"set patching over N = {n_prompts} prompts"] if n_prompts is not None else []
    return f"Where the '{trait}' shift lives on {model_label(model)}, by method<br><sup>{'; '.join(methods)}</sup>"


def where_notes(res: dict[str, Any]) -> list[str]:
    """Lines under the where figure's title: each student whose every-position patch is not 1, and why."""
    ref = where_metric(res)[1]
    notes = [(name, short_of_one(rows)) for name, rows in res.get("where", {}).items()]
    return [f"{name}: {beyond_the_stream(x, ref)}" for name, x in notes if x is not None]
