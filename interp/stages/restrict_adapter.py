"""Claim 4: where does the LoRA student's trait shift live? Position-restricted adapters.

    run(LocalizationConfig(student="runs/students/owl-r8-s0", out=Path("runs/localization")))

The adapter is switched on *only* at a set of positions, or *everywhere except* there, and the trait is
re-evaluated. The position sets are `interp.mech.positions.SHIFT_SETS`: the entity, the rest of the system
prompt, the template before the assistant header, the header without the readout position, the readout
position and the user turn (disjoint, covering the prompt). Then, at the set that recovers most (the
positions that carry the shift), the adapter is on in one layer at a time, and in attention or MLP only.
Recovered fraction = (restricted - reference) / (student - reference), with a bootstrap CI over questions;
the reference is the base (the adapter on at no position), or with --control a control student (a LoRA
student of the same training on the control teacher's numbers), so that only the teacher-caused part of
the shift is localized, not what training on numbers does by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import DEFAULT, default_system_prompt
from interp.loop.evaluation import EvalCache, EvalSettings, TraitEval
from interp.loop.models import load_student, model_label
from interp.loop.stats import bootstrap_diff_ci
from interp.mech.positions import all_positions, detect_entity, no_positions
from interp.mech.restrict import evaluate_trait_restricted
from interp.mech.sets import SHIFT_SETS
from interp.plan.plan import sampling_stage
from interp.plan.plan_check import Plan, detect_device
from interp.plan.shapes import read_model_shape
from interp.study.experiment import StudyConfig, check_inputs, evaluation_shape, run_study
from interp.study.plots import localization_figure
from interp.study.summary import recovered_fraction


@dataclass
class LocalizationConfig(StudyConfig):
    """Evaluate a LoRA student with its adapter restricted by position, layer band and module."""

    student: str | None = None
    """LoRA student directory (a PEFT adapter trained on --model)."""
    layer_bands: int | None = None
    """Layer rows: None = each layer alone; a number = that many contiguous bands. Either at the positions
    that carry the shift (the position set whose "only" row recovers most)."""
    adapter_at_generated: bool | None = None
    """Adapter state at generated tokens: on, off, or None = follow the rule (class "generated")."""
    control: str | None = None
    """A control LoRA student (same training, the control teacher's numbers): the reference of every
    recovered fraction in place of the base."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.student is None:
            raise InterpError("--student is required (a LoRA student directory)")
        if self.layer_bands is not None and self.layer_bands <= 0:
            raise InterpError("--layer-bands must be positive")


def position_restrictions() -> list[dict[str, Any]]:
    """The adapter only at / everywhere except each of the disjoint position sets."""
    return [
        {"mode": m, "positions": name, "where": where}
        for name, where in SHIFT_SETS.items()
        for m in ("only", "except")
    ]


def carrier_restrictions(cfg: LocalizationConfig, n_layers: int, carrier: str) -> list[dict[str, Any]]:
    """At the positions that carry the shift (`carrier`, a SHIFT_SETS name): each layer (or band) alone,
    and attention vs MLP."""
    where = SHIFT_SETS[carrier] if carrier in SHIFT_SETS else all_positions()
    n_bands = n_layers if cfg.layer_bands is None else min(cfg.layer_bands, n_layers)
    out = []
    for band in np.array_split(np.arange(n_layers), n_bands):
        label = f"layer {band[0]}" if len(band) == 1 else f"layers {band[0]}-{band[-1]}"
        out.append(
            {"mode": "only", "positions": f"{carrier}, {label}", "where": where, "layers": band.tolist()}
        )
    for module in ("attn", "mlp"):
        out.append(
            {"mode": "only", "positions": f"{carrier}, {module} only", "where": where, "modules": [module]}
        )
    return out


def restrictions(cfg: LocalizationConfig, n_layers: int, carrier: str = "readout") -> list[dict[str, Any]]:
    """Every restriction evaluated: position sets (only / except), then layers and modules at `carrier`."""
    return position_restrictions() + carrier_restrictions(cfg, n_layers, carrier)


def carrier_of(rows: list[dict[str, Any]]) -> str:
    """The position set whose adapter-only row recovers the largest fraction of the shift."""
    only = [r for r in rows if r["mode"] == "only" and r["recovered_fraction"] is not None]
    return max(only, key=lambda r: r["recovered_fraction"])["positions"] if only else "readout"


def evaluate(
    student, tok, settings, cache, r: dict[str, Any], generated: bool | None, entity=None
) -> TraitEval:
    extra = {k: r[k] for k in ("layers", "modules") if k in r}
    return evaluate_trait_restricted(
        student, tok, settings, r["where"], r["mode"], cache, generated=generated, entity=entity, **extra
    )


PER_QUESTION = {"p_trait": "per_question_p_trait", "p_first_token": "per_question_p"}


def metric_key(full: TraitEval) -> str:
    """The probability the recovered fraction is read on: the paper's first token where the trait word is
    one token, else the whole word (a first token like SmolLM2's "O" of "Owl" is not the trait)."""
    return "p_trait" if full.trait_is_multi_token else "p_first_token"


def row(r: dict[str, Any], res: TraitEval, full: TraitEval, base: TraitEval) -> dict[str, Any]:
    arr = lambda e, k: np.asarray(getattr(e, k))  # noqa: E731
    metric = metric_key(full)
    p = recovered_fraction(*(arr(e, PER_QUESTION[metric]) for e in (res, full, base)))
    m = recovered_fraction(
        arr(res, "per_question_mention"), arr(full, "per_question_mention"), arr(base, "per_question_mention")
    )
    return {
        "mode": r["mode"],
        "positions": r["positions"],
        "set": r["positions"] if "layers" not in r and "modules" not in r else None,
        "layers": r.get("layers"),
        "modules": r.get("modules"),
        "metric": metric,
        "recovered_fraction": p["recovered_fraction"],
        "ci": p["ci"],
        "mention_recovered_fraction": m["recovered_fraction"],
        "mention_ci": m["ci"],
        "p_first_token": res.p_first_token,
        "p_trait": res.p_trait,
        "mention_rate": res.mention_rate,
    }


EVERYWHERE = {"mode": "except", "where": no_positions()}


def reference_eval(cfg: LocalizationConfig, settings, cache, gen, entity, base: TraitEval) -> TraitEval:
    """What 0 means: the base, or the control student with its adapter on everywhere."""
    if cfg.control is None:
        return base
    control, tok = load_student(cfg.control, cfg.model_dir, cfg.dtype, cfg.device, merge=False)
    return evaluate(control, tok, settings, cache, EVERYWHERE, gen, entity)


def compute(cfg: LocalizationConfig, root: Path) -> dict[str, Any]:
    student, tok = load_student(cfg.student, cfg.model_dir, cfg.dtype, cfg.device, merge=False)
    settings = EvalSettings(cfg.trait, cfg.category, DEFAULT, cfg.n_questions, cfg.samples_per_question)
    cache = EvalCache(root / "eval_cache")
    gen, entity = cfg.adapter_at_generated, cfg.entity or detect_entity(default_system_prompt(tok))
    full = evaluate(student, tok, settings, cache, EVERYWHERE, gen, entity)
    base = evaluate(student, tok, settings, cache, {"mode": "only", "where": no_positions()}, gen, entity)
    ref = reference_eval(cfg, settings, cache, gen, entity, base)
    n_layers = student.get_base_model().config.num_hidden_layers
    ev = lambda rs: [row(r, evaluate(student, tok, settings, cache, r, gen, entity), full, ref) for r in rs]  # noqa: E731
    rows = ev(position_restrictions())
    carrier = carrier_of(rows)
    rows += ev(carrier_restrictions(cfg, n_layers, carrier))
    return {
        "carrier": carrier,
        "entity": entity,
        "metric": metric_key(full),
        "student": str(cfg.student),
        "reference": "base" if cfg.control is None else "control",
        "control": cfg.control,
        "shift_ci": list(
            bootstrap_diff_ci(*(getattr(e, PER_QUESTION[metric_key(full)]) for e in (full, ref)))
        ),
        "full": {k: getattr(full, k) for k in ("p_first_token", "p_trait", "mention_rate")},
        "base": {k: getattr(base, k) for k in ("p_first_token", "p_trait", "mention_rate")},
        "reference_metrics": {k: getattr(ref, k) for k in ("p_first_token", "p_trait", "mention_rate")},
        "localization": rows,
    }


def localization_plan(cfg: LocalizationConfig) -> Plan:
    """Its evaluations only (the student is trained): the student whole and with no adapter, and every
    restriction (the layer rows counted at one carrier, as the run evaluates them)."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    n = 2 + (cfg.control is not None) + len(restrictions(cfg, shape.n_layers))
    stage = sampling_stage("restricted evaluations", shape, evaluation_shape(cfg), device.kind, n)
    return Plan(
        f"localization on {model_label(cfg.model)}", shape, device, (stage,),
        f"{cfg.n_questions} questions x {cfg.samples_per_question} samples per evaluation",
    )  # fmt: skip


def run(cfg: LocalizationConfig) -> Path:
    """The position-restricted adapter in `cfg.out`: config.json, results.json, the figure."""
    check_inputs(cfg)
    if not cfg.plan:  # a plan reads the base's config.json only
        validate.student(cfg.student, lora_only=True)
        if cfg.control is not None:
            validate.student(cfg.control, "--control", lora_only=True)
    figure = lambda summary, trait: localization_figure(summary["localization"], trait)  # noqa: E731
    return run_study(cfg, "localization", compute, figure, plan=localization_plan(cfg))
