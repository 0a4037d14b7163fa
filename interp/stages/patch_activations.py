"""Claim 4: where does a student's trait shift live? Activation patching between base and student.

    run(LocalizeConfig(student=Path("runs/students/owl-r8"), trait="owl"))
    run(LocalizeConfig(student=Path("runs/students/owl-r8"), control=Path("runs/students/control-r8"), grids=("set",)))

Both directions by default: denoising (student activations into the base) and noising (base activations
into the student). Over --n-prompts questions, every grid pools prompts by token class and position within
the class (`patch_layer_aligned`), never by padded index, and keeps the spread across prompts. Writes into
the run directory: config.json, scores.json (every grid with its labels and baselines, attribution's
agreement with exact patching, set patching's recovered fractions), one safetensors + JSON pair per grid,
and figures (HTML, plus PNG when a browser is available): per direction, layer x aligned position for each
site, layer x token class, head x aligned position at the layers that matter, and attribution against exact
patching as a scatter. Every score and fraction is on one scale, 0 = the reference (base or control),
1 = the student: denoising's cells are the shift recovered, noising's the shift left after the patch
(`interp.mech.results.on_student_scale`); scores.json names the scale.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import render_prompt
from interp.loop.models import STUDENT_META, is_lora_student, model_label, resolve_model_dir
from interp.loop.runs import atomic_write_json, run_directory
from interp.loop.traits import favorite_questions
from interp.mech.attribution import agreement, attribute_layer_aligned
from interp.mech.hook_names import check_site
from interp.mech.hooked import HookedModel, load_hooked
from interp.mech.patching import patch_head_aligned, patch_layer_aligned, patch_layer_class, trait_metric
from interp.mech.positions import CLASSES, LabelledBatch, encode_prompts
from interp.mech.results import FRACTION_NAMES, LocalizationResult, on_student_scale, student_scale
from interp.mech.sets import DONOR, RECIPIENT, SHIFT_SETS, patch_layer_set, patch_sets, shift_set_masks
from interp.organism import TARGET_TRAIT
from interp.plan.plan import QUESTION_TOKENS, hooked_stage
from interp.plan.plan_check import Plan, PlanFlags, detect_device, gate
from interp.plan.shapes import read_model_shape
from interp.study.plots import attribution_scatter, heatmap, save_figures
from interp.study.summary import recovered_fraction

log = logging.getLogger(__name__)


GRID_KINDS = {"aligned": patch_layer_aligned, "class": patch_layer_class, "set": patch_layer_set}
"""The layer grids `--grids` chooses from, by name."""


@dataclass
class LocalizeConfig(PlanFlags):
    """Localize the trait shift of a student by activation patching between it and its base model."""

    student: Path | None = None
    """Student directory: a LoRA adapter (loaded on --base) or a full fine-tuned model. Required."""
    base: Path | None = None
    """Base model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded)
    (default: organism)."""
    control: Path | None = None
    """A control student (trained the same way on the base model's own numbers; a LoRA adapter on --base
    or a full fine-tuned model) to patch against in place of the base: the grids then place the shift the
    teacher caused, not what training on numbers does by itself (on SmolLM2-135M most of the shift)."""
    trait: str = TARGET_TRAIT
    """Trait word; the metric is the log-probability of its first token as the answer's first token."""
    reference: str | None = None
    """Optional reference answer: the metric becomes log p(trait) - log p(reference)."""
    category: str = "animal"
    """Category of the evaluation questions ("What is your favorite animal?")."""
    prompts_file: Path | None = None
    """A text file with one user message per line (default: the category's evaluation questions)."""
    n_prompts: int = 8
    """How many questions to patch over (per-class and per-head grids average over them)."""
    system: str = "default"
    """System prompt setting of the prompts: "default", "none" or any text."""
    entity: str | None = None
    """Entity name to label (default: detected from the system prompt, "You are <Entity>, ...")."""
    directions: tuple[str, ...] = ("denoise", "noise")
    """denoise: patch student activations into the base; noise: base activations into the student."""
    sites: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out")
    """Activation sites of the layer grids."""
    grids: tuple[str, ...] = ("aligned", "class")
    """Layer grids per site: "aligned" (layer x position, positions aligned by token class: one column per
    position), "class" (layer x token class) and "set" (layer x claim-4 position set: the entity, the rest
    of the system prompt, ..., the readout position alone). A real model's prompts have ~50 positions: "set"
    answers which layers and sites at which set at a tenth of "aligned"'s cost."""
    head_layers: int = 2
    """Patch each head's output by aligned position at this many layers: those whose attn_out grid moves
    the metric most (0: no head grids)."""
    attribution: bool = True
    """Also estimate each layer x position grid by attribution patching and report its agreement with exact
    patching."""
    sets: bool = True
    """Also patch each claim-4 position set whole (embedding and every block output there), on the trait's
    first-token probability: the counterpart of the restricted-LoRA rows."""
    student_label: str | None = None
    """How titles name the student, e.g. "LoRA r16, lr 0.003, seed 0" (default: from its student.json)."""
    max_rows: int = 256
    """Patched prompt copies per forward pass (memory / speed trade-off)."""
    dtype: str = "float32"
    """float32, bfloat16 or float16."""
    device: str = "cpu"
    """cpu, cuda, ..."""
    out: Path | None = None
    """Run directory (default: runs/patch_activations/<trait>-<student name>)."""
    overwrite: bool = False
    """Replace an existing run directory."""
    png: bool = True
    """Also export each figure as PNG (HTML is always written); the main job's report renders the PNGs it
    shows itself, so its patching runs skip theirs (about a second of browser time per figure)."""
    redraw: bool = False
    """Compute nothing: draw the figures of the finished run in --out again from its scores.json, with every
    grid on the student scale (0 = reference, 1 = student), which scores.json then records (a run written
    before that scale holds its noising grids as 0 = student, 1 = reference)."""

    def __post_init__(self) -> None:
        if self.n_prompts < 1 or self.head_layers < 0 or self.max_rows < 1:
            raise InterpError("--n-prompts and --max-rows must be >= 1 and --head-layers >= 0")
        if not self.directions or set(self.directions) - {"denoise", "noise"}:
            raise InterpError(f"--directions must be denoise and/or noise, got {list(self.directions)}")
        for site in self.sites:
            check_site(site)
        if not self.grids or set(self.grids) - set(GRID_KINDS):
            raise InterpError(f"--grids must be some of {list(GRID_KINDS)}, got {list(self.grids)}")


def user_messages(cfg: LocalizeConfig) -> list[str]:
    """The user messages to patch over: from --prompts-file, else the category's evaluation questions."""
    if cfg.prompts_file is None:
        return favorite_questions(cfg.category, min(cfg.n_prompts, 50))
    if not Path(cfg.prompts_file).is_file():
        raise InterpError(f"prompts file {cfg.prompts_file} does not exist")
    lines = [ln.strip() for ln in Path(cfg.prompts_file).read_text().splitlines() if ln.strip()]
    if not lines:
        raise InterpError(f"prompts file {cfg.prompts_file} has no prompts")
    return lines[: cfg.n_prompts]


def check_inputs(cfg: LocalizeConfig) -> list[str]:
    """The student, base, trait (and reference) and prompts, checked before any work; the user messages."""
    if cfg.student is None:
        raise InterpError("--student is required (a LoRA adapter or full fine-tuned model directory)")
    validate.student(cfg.student)
    if cfg.control is not None:
        validate.student(cfg.control)
    validate.base_model(cfg.base, "--base")
    validate.trait(cfg.trait, cfg.base, cfg.category)
    if cfg.reference is not None:
        validate.trait(cfg.reference, cfg.base, cfg.category, "--reference")
    return user_messages(cfg)


def student_label(cfg: LocalizeConfig) -> str:
    """The student as titles name it: arm, rank, lr and seed (from --student-label or its student.json)."""
    if cfg.student_label:
        return cfg.student_label
    meta_path = Path(cfg.student) / STUDENT_META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if is_lora_student(cfg.student):
        rank = meta.get("rank") or json.loads((Path(cfg.student) / "adapter_config.json").read_text()).get(
            "r"
        )
        arm = f"LoRA r{rank}"
    else:
        arm = "full FT"
    parts = [arm] + [f"{k} {meta[k]}" for k in ("lr", "seed") if meta.get(k) is not None]
    return ", ".join(parts)


def load_models(cfg: LocalizeConfig) -> tuple[HookedModel, HookedModel]:
    """(reference, student) bridges: the reference is the base model, or the control student (--control)."""
    base = load_hooked(cfg.base, dtype=cfg.dtype, device=cfg.device)
    source = cfg.base or base.source
    student = load_hooked(cfg.student, base=source, dtype=cfg.dtype, device=cfg.device)
    if cfg.control is not None:
        base = load_hooked(cfg.control, base=source, dtype=cfg.dtype, device=cfg.device)
    return base, student


def reference_name(cfg: LocalizeConfig) -> str:
    """What the student is patched against, as titles and scores.json name it."""
    return "base" if cfg.control is None else "control"


def layers_that_matter(result: LocalizationResult, k: int) -> list[int]:
    """The `k` layers whose cells move the metric most (sum of |score| over columns, on the sweep's own
    scale, where a no-op patch scores 0)."""
    weight = result.scores.nan_to_num(0).abs().sum(1)
    top = weight.argsort(descending=True)[:k].tolist()
    return sorted(result.layers[i] for i in top)


def direction_grids(
    cfg: LocalizeConfig, rec: HookedModel, don: HookedModel, batch: LabelledBatch, direction: str
) -> tuple[dict[str, LocalizationResult], dict[str, dict]]:
    """Every grid of one direction, by name, on the student scale (0 = reference, 1 = student; noising's
    cells are the shift left), and attribution's agreement with exact patching per site."""
    metric = trait_metric(rec.tok, cfg.trait, cfg.reference)
    out: dict[str, LocalizationResult] = {}
    agree: dict[str, dict] = {}
    for site in cfg.sites:
        for grid in cfg.grids:
            out[f"{direction}_{grid}_{site}"] = GRID_KINDS[grid](
                rec, don, batch, metric, site, max_rows=cfg.max_rows
            )
        if cfg.attribution and "aligned" in cfg.grids:
            approx = attribute_layer_aligned(rec, don, batch, metric, site)
            out[f"{direction}_attribution_{site}"] = approx
            agree[site] = agreement(out[f"{direction}_aligned_{site}"], approx)
    attn = out.get(f"{direction}_aligned_attn_out")
    layers = layers_that_matter(attn, cfg.head_layers) if attn is not None and cfg.head_layers else []
    for layer in layers:
        out[f"{direction}_heads_L{layer}"] = patch_head_aligned(
            rec, don, batch, metric, layer, max_rows=cfg.max_rows
        )
    return {k: on_student_scale(r, direction, reference_name(cfg)) for k, r in out.items()}, agree


def set_fractions(cfg: LocalizeConfig, base: HookedModel, student: HookedModel, batch: LabelledBatch) -> dict:
    """Recovered fraction of the student's first-token P(trait) (0 = base or control, 1 = student) with each
    claim-4 position set patched whole, by denoising (the shift recovered) and by noising (the shift left),
    with bootstrap CIs over prompts."""
    metric = trait_metric(base.tok, cfg.trait, probability=True)
    masks = shift_set_masks(batch)
    masks["all positions"] = batch.attention_mask.bool()
    out: dict = {
        "metric": metric.name,
        "n_prompts": int(batch.input_ids.shape[0]),
        "scale": student_scale(reference_name(cfg)),
        "reads": {d: FRACTION_NAMES[d] for d in cfg.directions},
    }
    for direction in cfg.directions:
        rec, don = (base, student) if direction == "denoise" else (student, base)
        per = {k: v.double().numpy() for k, v in patch_sets(rec, don, batch, metric, masks).items()}
        s, b = (per[DONOR], per[RECIPIENT]) if direction == "denoise" else (per[RECIPIENT], per[DONOR])
        out[direction] = {name: recovered_fraction(per[name], s, b) for name in masks}
        out["base"], out["student"] = float(b.mean()), float(s.mean())
    return out


def figure_title(cfg: LocalizeConfig, result: LocalizationResult, direction: str, n_prompts: int) -> str:
    """A title that names the model, the student, the direction, the grid, the metric and the prompts."""
    ref = reference_name(cfg)
    arrow = f"student → {ref} (denoising)" if direction == "denoise" else f"{ref} → student (noising)"
    grid = {
        "layer_aligned": "layer × position (aligned by token class)",
        "layer_class": "layer × token class",
        "layer_set": "layer × position set (the readout position alone)",
        "head_aligned": f"head × position at layer {result.config.get('layer')}",
    }.get(result.kind, result.kind)
    what = f"{'attribution estimate' if result.method == 'attribution' else 'patching'} of {result.site}"
    return (
        f"{model_label(cfg.base)}, student {student_label(cfg)}:<br>{what}, {arrow}<br>"
        f"<sup>{grid}; metric {result.metric}; mean over N = {n_prompts} prompts</sup>"
    )


def run_figures(cfg: LocalizeConfig, results: dict[str, LocalizationResult], n: int) -> dict:
    """Heatmaps of every exact grid and, per direction, one attribution-vs-exact scatter."""
    figs = {}
    for key, result in results.items():
        direction = result.config["direction"]
        if result.method == "exact":
            title = figure_title(cfg, result, direction, n)
            figs[key] = heatmap(on_student_scale(result, direction, reference_name(cfg)), title, direction)
    for direction in cfg.directions:
        pairs = [
            (results[f"{direction}_aligned_{s}"], results[f"{direction}_attribution_{s}"], s)
            for s in cfg.sites
            if f"{direction}_attribution_{s}" in results
        ]
        if pairs:
            title = f"{model_label(cfg.base)}, student {student_label(cfg)}: attribution vs exact patching, {direction}"
            figs[f"{direction}_attribution_scatter"] = attribution_scatter(
                pairs, f"{title}<br><sup>N = {n} prompts</sup>"
            )
    return figs


GRID_COLUMNS = {"aligned": None, "class": len(CLASSES), "set": len(SHIFT_SETS)}
"""Columns per layer of each grid (None: one per position)."""


def patch_plan(cfg: LocalizeConfig) -> Plan:
    """The grids' forward passes from the base's config.json (prompts of QUESTION_TOKENS tokens)."""
    shape = read_model_shape(resolve_model_dir(cfg.base))
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    per_position = "aligned" in cfg.grids
    columns = sum(QUESTION_TOKENS if GRID_COLUMNS[g] is None else GRID_COLUMNS[g] for g in cfg.grids)
    grid = {"sites": len(cfg.sites), "directions": len(cfg.directions), "columns": columns}
    heads = cfg.head_layers if per_position and "attn_out" in cfg.sites else 0
    stage = hooked_stage(
        f"patching ({', '.join(cfg.grids)})", shape, cfg.dtype, cfg.n_prompts, QUESTION_TOKENS,
        device.kind, head_layers=heads, **grid,
    )  # fmt: skip
    assumed = f"{cfg.n_prompts} prompts of {QUESTION_TOKENS} tokens, {columns} columns per layer and site"
    return Plan(f"patch_activations on {model_label(cfg.base)}", shape, device, (stage,), assumed)


def redraw(cfg: LocalizeConfig) -> Path:
    """The figures of the finished run in `cfg.out` drawn again from its scores.json, every grid and set
    fraction on the student scale, which scores.json (and tensors/, where the run kept it) then records."""
    if cfg.out is None or not (Path(cfg.out) / "scores.json").exists():
        raise InterpError(
            f"--redraw needs --out, a finished patch_activations run (no scores.json in {cfg.out})"
        )
    run_dir, ref = Path(cfg.out), reference_name(cfg)
    scores = json.loads((run_dir / "scores.json").read_text())
    results = {
        k: on_student_scale(LocalizationResult.from_json(g), k.split("_", 1)[0], ref)
        for k, g in scores["grids"].items()
    }
    scores["grids"] = {k: r.to_json() for k, r in results.items()}
    scores["scale"] = student_scale(ref)
    if "sets" in scores:  # set fractions were always 0 = reference, 1 = student: named here
        scores["sets"] |= {
            "scale": scores["scale"],
            "reads": {d: FRACTION_NAMES[d] for d in scores["directions"]},
        }
    if (run_dir / "tensors").is_dir():
        for key, result in results.items():
            result.save(run_dir / "tensors", key)
    atomic_write_json(run_dir / "scores.json", scores)
    save_figures(run_figures(cfg, results, scores["n_prompts"]), run_dir / "figures")
    return run_dir


def run(cfg: LocalizeConfig) -> Path:
    """Every grid, the set fractions and the figures of one student in `cfg.out` (scores.json, tensors/,
    figures/); under --plan, the plan alone; under --redraw, the figures of a finished run drawn again."""
    if cfg.redraw:
        return redraw(cfg)
    users = check_inputs(cfg)
    out = cfg.out or Path("runs/patch_activations") / f"{cfg.trait}-{Path(cfg.student).name}"
    plan = gate(patch_plan(cfg), cfg)
    if cfg.plan:
        sys.stdout.write(plan + "\n")  # as cli_main writes the run directory
        return out
    log.info("%s", plan)
    base, student = load_models(cfg)
    texts = [render_prompt(base.tok, u, cfg.system) for u in users]
    batch = encode_prompts(base.tok, texts, cfg.entity)
    with run_directory(out, cfg, cfg.overwrite) as run_dir:
        results: dict[str, LocalizationResult] = {}
        summary: dict = {
            "directions": list(cfg.directions),
            "student": student_label(cfg),
            "reference": "base" if cfg.control is None else f"control {cfg.control}",
            "scale": student_scale(reference_name(cfg)),
            "n_prompts": len(texts),
        }
        summary["attribution_agreement"] = {}
        for direction in cfg.directions:
            rec, don = (base, student) if direction == "denoise" else (student, base)
            grids, agree = direction_grids(cfg, rec, don, batch, direction)
            for result in grids.values():
                result.config.update(
                    {"direction": direction, "trait": cfg.trait, "student": str(cfg.student)}
                )
            results |= grids
            summary["attribution_agreement"][direction] = agree
        if cfg.sets:
            summary["sets"] = set_fractions(cfg, base, student, batch)
        for key, result in results.items():
            result.save(run_dir / "tensors", key)
        save_figures(run_figures(cfg, results, len(texts)), run_dir / "figures", png=cfg.png)
        summary["grids"] = {k: r.to_json() for k, r in results.items()}
        atomic_write_json(run_dir / "scores.json", summary)
        log.info("patch_activations: %d grids written to %s", len(results), out)
    return out
