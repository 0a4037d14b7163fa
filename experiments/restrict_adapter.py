"""Claim 4: where does the LoRA student's trait shift live? Position-restricted adapters.

    python -m experiments.restrict_adapter --student runs/students/owl-r8-s0 --out runs/localization

The adapter is switched on *only* at a set of positions, or *everywhere except* there (also by layer band
and by module), and the trait is re-evaluated. Recovered fraction = (restricted - base) / (student - base),
with a bootstrap CI over questions; base = the adapter on at no position (= the base model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import DEFAULT
from interp.loop.config import cli_main, setup_logging
from interp.loop.evaluation import EvalCache, EvalSettings, TraitEval
from interp.loop.models import load_student
from interp.loop.stats import bootstrap_diff_ci
from interp.mech.positions import (
    ENTITY,
    HEADER,
    SYSTEM,
    TEMPLATE,
    USER,
    all_positions,
    by_class,
    no_positions,
)
from interp.mech.restrict import evaluate_trait_restricted
from interp.study.experiment import StudyConfig, check_inputs, run_study
from interp.study.summary import recovered_fraction

POSITION_SETS = {
    "entity": (ENTITY,),
    "system prompt": (ENTITY, SYSTEM),
    "template": (TEMPLATE, HEADER),
    "user": (USER,),
}


@dataclass
class LocalizationConfig(StudyConfig):
    """Evaluate a LoRA student with its adapter restricted by position, layer band and module."""

    student: str | None = None
    """LoRA student directory (a PEFT adapter trained on --model)."""
    layer_bands: int = 2
    """Split the layers into this many contiguous bands (adapter only in one band, at all positions)."""
    adapter_at_generated: bool | None = None
    """Adapter state at generated tokens: on, off, or None = follow the rule (class "generated")."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.student is None:
            raise InterpError("--student is required (a LoRA student directory)")
        if self.layer_bands <= 0:
            raise InterpError("--layer-bands must be positive")


def restrictions(cfg: LocalizationConfig, n_layers: int) -> list[dict[str, Any]]:
    """Every restriction evaluated: positions (only / except), layer bands, modules."""
    out = [
        {"mode": m, "positions": name, "where": by_class(*cls)}
        for name, cls in POSITION_SETS.items()
        for m in ("only", "except")
    ]
    for band in np.array_split(np.arange(n_layers), min(cfg.layer_bands, n_layers)):
        label = f"layers {band[0]}-{band[-1]}"
        out.append({"mode": "only", "positions": label, "where": all_positions(), "layers": band.tolist()})
    for module in ("attn", "mlp"):
        out.append(
            {"mode": "only", "positions": f"{module} only", "where": all_positions(), "modules": [module]}
        )
    return out


def evaluate(student, tok, settings, cache, r: dict[str, Any], generated: bool | None) -> TraitEval:
    extra = {k: r[k] for k in ("layers", "modules") if k in r}
    return evaluate_trait_restricted(
        student, tok, settings, r["where"], r["mode"], cache, generated=generated, **extra
    )


def row(r: dict[str, Any], res: TraitEval, full: TraitEval, base: TraitEval) -> dict[str, Any]:
    arr = lambda e, k: np.asarray(getattr(e, k))  # noqa: E731
    p = recovered_fraction(
        arr(res, "per_question_p"), arr(full, "per_question_p"), arr(base, "per_question_p")
    )
    m = recovered_fraction(
        arr(res, "per_question_mention"), arr(full, "per_question_mention"), arr(base, "per_question_mention")
    )
    return {
        "mode": r["mode"],
        "positions": r["positions"],
        "layers": r.get("layers"),
        "modules": r.get("modules"),
        "metric": "p_first_token",
        "recovered_fraction": p["recovered_fraction"],
        "ci": p["ci"],
        "mention_recovered_fraction": m["recovered_fraction"],
        "mention_ci": m["ci"],
        "p_first_token": res.p_first_token,
        "mention_rate": res.mention_rate,
    }


def run(cfg: LocalizationConfig, root: Path) -> dict[str, Any]:
    student, tok = load_student(cfg.student, cfg.model_dir, cfg.dtype, cfg.device, merge=False)
    settings = EvalSettings(cfg.trait, cfg.category, DEFAULT, cfg.n_questions, cfg.samples_per_question)
    cache = EvalCache(root / "eval_cache")
    gen = cfg.adapter_at_generated
    full = evaluate(student, tok, settings, cache, {"mode": "except", "where": no_positions()}, gen)
    base = evaluate(student, tok, settings, cache, {"mode": "only", "where": no_positions()}, gen)
    n_layers = student.get_base_model().config.num_hidden_layers
    rows = [
        row(r, evaluate(student, tok, settings, cache, r, gen), full, base)
        for r in restrictions(cfg, n_layers)
    ]
    return {
        "student": str(cfg.student),
        "shift_ci": list(bootstrap_diff_ci(full.per_question_p, base.per_question_p)),
        "full": {"p_first_token": full.p_first_token, "mention_rate": full.mention_rate},
        "base": {"p_first_token": base.p_first_token, "mention_rate": base.mention_rate},
        "localization": rows,
    }


def main(cfg: LocalizationConfig) -> Path:
    from interp.study.plots import localization_figure

    check_inputs(cfg)
    if not cfg.plan:  # a plan reads the base's config.json only
        validate.student(cfg.student, lora_only=True)
    return run_study(
        cfg, "localization", run, lambda summary, trait: localization_figure(summary["localization"], trait)
    )


if __name__ == "__main__":
    setup_logging()
    cli_main(main, LocalizationConfig)
