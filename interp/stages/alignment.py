"""Why LoRA transfers: each rank-sweep student's activation shift against the teacher's persona direction.

    run(AlignmentConfig(out=Path("runs/reproduce")))     # after the rank sweep in the same out

For every student of the rank sweep (each rank, full FT, every seed): the cosine between its shift
(student - base, default prompt, number prompts) and the persona direction (persona - default prompt, on
the base), per layer and token class, and the shift's projection on it; whether the projection at the
shared tokens predicts the student's trait lift over control across students; and how much of the best
student's lift the base recovers when only the student's mean entity shift is added at the entity tokens.
Uses the finished cells of the rank sweep with the same settings (it trains nothing).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp import InterpError
from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.evaluation import trait_token_ids
from interp.loop.models import load_model, load_student
from interp.loop.numbers import number_prompts
from interp.loop.traits import favorite_questions, trait_system_prompt
from interp.mech import alignment as A
from interp.mech.positions import ENTITY, detect_entity, encode_prompts
from interp.stages.rank_sweep import RankSweepConfig, control_means, default_mean, specs, student_cells
from interp.study.experiment import check_inputs, run_study
from interp.study.jobs import ALIGN_PROMPT_SEED
from interp.study.plots import alignment_figure
from interp.study.sweep import finished, job_path

PROMPT_SEED = ALIGN_PROMPT_SEED  # number prompts of the alignment measurement (not those of any dataset)


@dataclass
class AlignmentConfig(RankSweepConfig):
    """Shift vs persona direction for the finished students of a rank sweep with these settings."""

    n_prompts: int = 32
    """Number prompts on which the direction and the shifts are measured."""


def _p_trait(model, tok, batch, trait: str, steer=None) -> np.ndarray:
    ids = trait_token_ids(tok, trait)[0]
    if steer is None:
        return A.next_token_probs(model, batch)[:, ids].sum(-1).numpy()
    with A.steered(model, *steer):
        return A.next_token_probs(model, batch)[:, ids].sum(-1).numpy()


def _students(cfg: AlignmentConfig, root: Path) -> list[tuple[Any, int, Path, dict]]:
    """(spec, seed, directory, result) of every finished trait student of the rank sweep."""
    out = []
    for spec in specs(cfg)[0]:
        for cell in student_cells(cfg, spec, "trait"):
            res = finished(root, cell)
            if res is None:
                raise InterpError(
                    f"--out {root}: student cell {cell.name} is not finished under it; run the rank sweep there "
                    "first (with the same settings)"
                )
            out.append((spec, cell.params["train"]["seed"], job_path(root, cell), res))
    return out


def steering(cfg, base, tok, student, entity: str | None) -> dict[str, Any]:
    """Add the student's mean entity shift (per layer) at the entity tokens of the favourite questions."""
    qs = favorite_questions(cfg.category)[: cfg.n_questions]
    batch = encode_prompts(tok, [render_prompt(tok, q, DEFAULT) for q in qs], entity)
    mask = batch.class_mask(ENTITY)
    if not mask.any():
        return {"note": "the default system prompt names no entity: nothing to steer"}
    shift = A.class_means(A.position_shift(student, base, batch), batch, [ENTITY])[ENTITY]
    p_base, p_student = _p_trait(base, tok, batch, cfg.trait), _p_trait(student, tok, batch, cfg.trait)
    gap = float(p_student.mean() - p_base.mean())
    layers = []
    for layer, v in enumerate(shift):
        p = _p_trait(base, tok, batch, cfg.trait, (layer, mask, v))
        rec = float(p.mean() - p_base.mean()) / gap if abs(gap) > 1e-9 else None
        layers.append({"layer": layer, "p_trait": float(p.mean()), "recovered": rec})
    return {"p_base": float(p_base.mean()), "p_student": float(p_student.mean()), "layers": layers}


def correlations(rows: list[dict], lifts: dict[str, float]) -> dict[str, Any]:
    """Pearson r over students between the projection and the lift, per shared class and layer, and for the
    pre-declared headline predictor: the projection averaged over the shared classes and all layers."""
    by_key: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["token_class"] in A.SHARED_CLASSES:
            by_key[(r["token_class"], r["layer"])][r["student"]] = r["projection"]
    names = sorted(lifts)
    per = [
        {"token_class": c, "layer": layer, "r": A.pearson([v[n] for n in names], [lifts[n] for n in names])}
        for (c, layer), v in sorted(by_key.items())
    ]
    headline = [float(np.mean([v[n] for v in by_key.values()])) for n in names]
    return {
        "predictor": "projection averaged over the shared classes (entity, template, header) and layers",
        "r": A.pearson(headline, [lifts[n] for n in names]),
        "n_students": len(names),
        "points": [
            {"student": n, "projection": p, "lift": lifts[n]} for n, p in zip(names, headline, strict=True)
        ],
        "per_class_layer": per,
    }


def compute(cfg: AlignmentConfig, root: Path) -> dict[str, Any]:
    control_p = control_means(cfg, root)["per_question_p"]  # the rank sweep has finished, or one error
    students = _students(cfg, root)
    base, tok = load_model(cfg.model_dir, cfg.dtype, cfg.device)
    entity = detect_entity(render_prompt(tok, "?", DEFAULT))
    users = [p.text for p in number_prompts(cfg.n_prompts, PROMPT_SEED)]
    persona = [render_prompt(tok, u, trait_system_prompt(cfg.trait, cfg.category)) for u in users]
    default = [render_prompt(tok, u, DEFAULT) for u in users]
    direction = A.persona_direction(base, tok, persona, default, entity)
    rows, lifts, best = [], {}, None
    for spec, seed, sdir, res in students:
        student, _ = load_student(sdir, cfg.model_dir, cfg.dtype, cfg.device)
        name = f"{spec.tag}/t{seed}"
        rank = spec.rank if spec.mode == "lora" else "full"
        shift = A.student_shift(student, base, tok, default, entity)
        rows += [asdict(a) for a in A.align(direction, shift, name, rank, seed)]
        lifts[name] = default_mean(res, "per_question_p") - control_p  # first-token P(trait) lift
        if spec.mode == "lora" and (best is None or lifts[name] > best[0]):
            best = (lifts[name], name, student)
    return {
        "alignment": rows,
        "lifts": lifts,
        "control_p_first_token": control_p,
        "correlation": correlations(rows, lifts),
        "steering": {"student": best[1], **steering(cfg, base, tok, best[2], entity)} if best else {},
        "entity": entity,
    }


def run(cfg: AlignmentConfig) -> Path:
    """The alignment of the rank sweep's students in `cfg.out` (where the sweep ran): results.json, figure."""
    check_inputs(cfg)
    return run_study(cfg, "alignment", compute, alignment_figure)
