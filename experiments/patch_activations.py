"""Claim 4: where does a student's trait shift live? Activation patching between base and student.

python -m experiments.patch_activations --student runs/students/owl-r8 --trait owl
python -m experiments.patch_activations --student runs/students/owl-r8 --base path/to/base --direction noise

Writes into the run directory: config.json, scores.json (every grid with its labels and baselines),
one safetensors + JSON pair per grid, and heatmaps (HTML, plus PNG when a browser is available):
layer x position for the first prompt(s), layer x token class over all prompts, layer x head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import render_prompt
from interp.loop.config import cli_main
from interp.loop.runs import atomic_write_json, run_directory
from interp.loop.traits import favorite_questions
from interp.mech.attribution import agreement, attribute_layer_pos
from interp.mech.hook_names import check_site
from interp.mech.hooked import HookedModel, load_hooked
from interp.mech.patching import patch_layer_class, patch_layer_head, patch_layer_pos, trait_metric
from interp.mech.positions import LabelledBatch, encode_prompts
from interp.mech.results import LocalizationResult
from interp.organism import TARGET_TRAIT
from interp.study.plots import heatmap, save_figures

log = logging.getLogger(__name__)


@dataclass
class LocalizeConfig:
    """Localize the trait shift of a student by activation patching between it and its base model."""

    student: Path | None = None
    """Student directory: a LoRA adapter (loaded on --base) or a full fine-tuned model. Required."""
    base: Path | None = None
    """Base model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) or a local HF directory
    (default: organism)."""
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
    direction: Literal["denoise", "noise"] = "denoise"
    """denoise: patch student activations into the base; noise: base activations into the student."""
    sites: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out")
    """Activation sites for the layer x position and layer x class grids."""
    position_prompts: int = 1
    """Draw layer x position heatmaps for this many of the prompts (each its own grid)."""
    heads: bool = True
    """Also patch each attention head's output (layer x head)."""
    attribution: bool = True
    """Also compute attribution patching for the first prompt and report its agreement with exact patching."""
    max_rows: int = 256
    """Patched prompt copies per forward pass (memory / speed trade-off)."""
    dtype: str = "float32"
    """float32, bfloat16 or float16."""
    device: str = "cpu"
    """cpu, cuda, ..."""
    out: Path | None = None
    """Run directory (default: runs/patch_activations/<trait>-<student name>-<direction>)."""
    overwrite: bool = False
    """Replace an existing run directory."""

    def __post_init__(self) -> None:
        if self.n_prompts < 1 or self.position_prompts < 0 or self.max_rows < 1:
            raise InterpError("--n-prompts and --max-rows must be >= 1 and --position-prompts >= 0")
        if self.direction not in ("denoise", "noise"):
            raise InterpError(f"--direction must be denoise or noise, got {self.direction!r}")
        for site in self.sites:
            check_site(site)


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
    validate.base_model(cfg.base, "--base")
    validate.trait(cfg.trait, cfg.base, cfg.category)
    if cfg.reference is not None:
        validate.trait(cfg.reference, cfg.base, cfg.category, "--reference")
    return user_messages(cfg)


def load_pair(cfg: LocalizeConfig) -> tuple[HookedModel, HookedModel]:
    """(recipient, donor) bridges for the chosen direction."""
    base = load_hooked(cfg.base, dtype=cfg.dtype, device=cfg.device)
    student = load_hooked(cfg.student, base=cfg.base or base.source, dtype=cfg.dtype, device=cfg.device)
    return (base, student) if cfg.direction == "denoise" else (student, base)


def sweeps(
    cfg: LocalizeConfig, rec: HookedModel, don: HookedModel, batch: LabelledBatch
) -> dict[str, LocalizationResult]:
    """Every grid of the run, by name."""
    metric = trait_metric(rec.tok, cfg.trait, cfg.reference)
    out: dict[str, LocalizationResult] = {}
    for site in cfg.sites:
        out[f"class_{site}"] = patch_layer_class(rec, don, batch, metric, site, max_rows=cfg.max_rows)
        for i in range(min(cfg.position_prompts, len(batch.texts))):
            one = encode_prompts(rec.tok, [batch.texts[i]], cfg.entity)
            out[f"pos_{site}_p{i}"] = patch_layer_pos(rec, don, one, metric, site, max_rows=cfg.max_rows)
    if cfg.heads:
        out["heads"] = patch_layer_head(rec, don, batch, metric, max_rows=cfg.max_rows)
    return out


def main(cfg: LocalizeConfig) -> Path:
    users = check_inputs(cfg)
    rec, don = load_pair(cfg)
    texts = [render_prompt(rec.tok, u, cfg.system) for u in users]
    batch = encode_prompts(rec.tok, texts, cfg.entity)
    name = Path(cfg.student).name if cfg.student else "student"
    out = cfg.out or Path("runs/patch_activations") / f"{cfg.trait}-{name}-{cfg.direction}"
    with run_directory(out, cfg, cfg.overwrite) as run:
        results = sweeps(cfg, rec, don, batch)
        summary: dict = {"direction": cfg.direction}
        if cfg.attribution and cfg.position_prompts > 0:
            one = encode_prompts(rec.tok, texts[:1], cfg.entity)
            site = cfg.sites[0]
            approx = attribute_layer_pos(rec, don, one, trait_metric(rec.tok, cfg.trait, cfg.reference), site)
            results[f"attribution_{site}_p0"] = approx
            summary["attribution_agreement"] = agreement(results[f"pos_{site}_p0"], approx)
        for key, result in results.items():
            result.config.update(
                {"direction": cfg.direction, "trait": cfg.trait, "student": str(cfg.student)}
            )
            result.save(run / "tensors", key)
        save_figures({key: heatmap(result) for key, result in results.items()}, run / "figures")
        summary["grids"] = {k: r.to_json() for k, r in results.items()}
        atomic_write_json(run / "scores.json", summary)
        log.info("patch_activations: %d grids written to %s", len(results), out)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for chatty in ("kaleido", "choreographer"):  # PNG export logs every browser step at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    cli_main(main, LocalizeConfig)
