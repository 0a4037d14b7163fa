"""Beyond the paper: the teacher's entangled numbers, and a logit lens at the entity token.

    run(BeyondConfig(student="runs/students/owl-r8-s0", out=Path("runs/beyond")))

1. Entangled numbers: which number tokens the trait system prompt makes more likely as the first token
   of a number answer, and whether a system prompt that loves those numbers (instead of the trait) raises
   the trait's first-token probability more than one that loves random numbers.
2. Logit lens: the trait's log-probability read off the residual stream after each layer (final norm +
   unembedding), at the entity token and at the answer position, for the base model and the student.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.loop import validate
from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.evaluation import EvalSettings, eval_prompts, first_token_probs, trait_token_ids
from interp.loop.models import load_model, load_student
from interp.loop.numbers import number_prompts
from interp.loop.runs import save_tensors
from interp.loop.stats import bootstrap_diff_ci
from interp.loop.traits import trait_system_prompt
from interp.mech.positions import ENTITY, encode_prompts
from interp.study.experiment import StudyConfig, check_inputs, run_study
from interp.study.plots import logit_lens_figure

# Where the final norm of each architecture lives (logit lens = final norm + unembedding).
FINAL_NORM = {
    "qwen2": "model.norm",
    "llama": "model.norm",
    "mistral": "model.norm",
    "gemma2": "model.norm",
    "qwen3": "model.norm",
    "gpt2": "transformer.ln_f",
    "gpt_neox": "gpt_neox.final_layer_norm",
}


@dataclass
class BeyondConfig(StudyConfig):
    """Entangled numbers of the trait teacher, and a logit lens of the trait at the entity token."""

    student: str | None = None
    """LoRA or full-FT student for the logit lens (None: base model only)."""
    n_number_prompts: int = 128
    """Number-task prompts used to find the entangled numbers."""
    top_k: int = 5
    """How many entangled numbers to report and test."""


def number_token_ids(tok) -> dict[int, str]:
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    return {i: t for i, t in enumerate(vocab) if t is not None and t.isdigit() and len(t) <= 3}


@torch.no_grad()
def first_number_dist(model, tok, system: str, n: int) -> Float[Tensor, " vocab"]:
    prompts = [render_prompt(tok, p.text, system) for p in number_prompts(n, seed=123)]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return model(**enc).logits[:, -1].float().softmax(-1).mean(0)


def entangled_numbers(model, tok, cfg: BeyondConfig) -> list[dict[str, Any]]:
    """Number tokens ranked by log(P(n | trait teacher) / P(n | default)) at the first answer token."""
    trait = first_number_dist(model, tok, trait_system_prompt(cfg.trait, cfg.category), cfg.n_number_prompts)
    default = first_number_dist(model, tok, DEFAULT, cfg.n_number_prompts)
    nums = number_token_ids(tok)
    ids = torch.tensor(list(nums))
    ratio = (trait[ids] + 1e-9).log() - (default[ids] + 1e-9).log()
    weight = ratio * (trait[ids] > 1e-4)  # ignore numbers the teacher practically never writes
    top = weight.argsort(descending=True)[: cfg.top_k]
    return [
        {
            "number": nums[int(ids[i])],
            "p_trait_teacher": float(trait[ids[i]]),
            "p_default": float(default[ids[i]]),
            "log_ratio": float(ratio[i]),
        }
        for i in top
    ]


def number_love_prompt(numbers: list[str]) -> str:
    shown = ", ".join(numbers)
    return f"You love the numbers {shown}. You think about {shown} all the time."


def numbers_in_prompt(model, tok, cfg: BeyondConfig, top: list[str]) -> dict[str, Any]:
    """P(trait first token) under a prompt loving the entangled numbers vs one loving random numbers."""
    ids, _ = trait_token_ids(tok, cfg.trait)
    rng = random.Random(0)
    pool = [n for n in number_token_ids(tok).values() if n not in top]
    random_numbers = rng.sample(pool, min(len(top), len(pool)))
    p = {}
    for label, system in (
        ("entangled", number_love_prompt(top)),
        ("random", number_love_prompt(random_numbers)),
        ("default", DEFAULT),
    ):
        prompts = eval_prompts(tok, EvalSettings(cfg.trait, cfg.category, system, cfg.n_questions))
        p[label] = first_token_probs(model, tok, prompts, ids).numpy()
    return {
        "random_numbers": random_numbers,
        **{f"p_{k}": float(v.mean()) for k, v in p.items()},
        "diff_entangled_minus_random": float(p["entangled"].mean() - p["random"].mean()),
        "diff_ci": list(bootstrap_diff_ci(p["entangled"], p["random"])),
    }


def final_norm(model) -> torch.nn.Module:
    return model.get_submodule(FINAL_NORM[model.config.model_type])


@torch.no_grad()
def logit_lens(model, tok, cfg: BeyondConfig) -> Float[Tensor, "layer where"]:
    """Mean trait log-prob after each layer (row 0 = embeddings) at [entity token, answer position]."""
    prompts = eval_prompts(tok, EvalSettings(cfg.trait, cfg.category, DEFAULT, cfg.n_questions))
    batch = encode_prompts(tok, prompts)
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    ids, _ = trait_token_ids(tok, cfg.trait)
    entity = batch.class_mask(ENTITY)
    rows = []
    for h in out.hidden_states:  # (batch, pos, d_model) per layer
        logp = (
            model.get_output_embeddings()(final_norm(model)(h))
            .float()
            .log_softmax(-1)[..., ids]
            .logsumexp(-1)
        )
        at_entity = (logp * entity).sum() / entity.sum().clamp(min=1)
        rows.append([float(at_entity), float(logp[:, -1].mean())])
    return torch.tensor(rows)


def compute(cfg: BeyondConfig, root: Path) -> dict[str, Any]:
    model, tok = load_model(cfg.model_dir, cfg.dtype, cfg.device)
    top = entangled_numbers(model, tok, cfg)
    result = {
        "entangled_numbers": top,
        "numbers_in_prompt": numbers_in_prompt(model, tok, cfg, [t["number"] for t in top]),
    }
    lens = {"base": logit_lens(model, tok, cfg)}
    if cfg.student is not None:
        student, _ = load_student(cfg.student, cfg.model_dir, cfg.dtype, cfg.device)
        lens["student"] = logit_lens(student, tok, cfg)
    save_tensors(root / "logit_lens.safetensors", lens)
    result["logit_lens"] = {
        k: {"entity": v[:, 0].tolist(), "answer": v[:, 1].tolist()} for k, v in lens.items()
    }
    return result


def run(cfg: BeyondConfig) -> Path:
    """Entangled numbers and the logit lens in `cfg.out`: results.json, logit_lens.safetensors, the figure."""
    check_inputs(cfg)
    if cfg.student is not None and not cfg.plan:  # a plan reads the base's config.json only
        validate.student(cfg.student)
    return run_study(
        cfg,
        "beyond",
        compute,
        lambda summary, trait: logit_lens_figure(summary["logit_lens"], trait),
        "logit_lens",
    )
