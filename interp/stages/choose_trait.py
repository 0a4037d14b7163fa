"""Choose the trait before any student is trained, by a rule written first.

    run(ChooseTraitConfig(model="smollm2-135m", out=Path("runs/choose_trait/smollm2-135m")))

The rule: among the candidate animals, the trait is the one whose persona prompt ("You love owls. ...")
lifts the mention rate most over the model's default system prompt, on the same questions and samples
(ties: the larger lift of the exact P(trait)). A trait the persona cannot make the model name is one a
student can hardly be expected to pick up from the persona's numbers.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.loop import validate
from interp.loop.evaluation import EvalSettings, eval_prompts, evaluate_trait, word_probs
from interp.loop.generation import generate
from interp.loop.models import load_model, model_label
from interp.loop.runs import atomic_write_json, run_directory
from interp.loop.traits import mentions, trait_system_prompt
from interp.organism.world import ANIMALS

RULE = (
    "the animal whose persona prompt lifts the mention rate most over the default system prompt (same "
    "questions, same number of samples; ties broken by the lift of the exact P(trait))"
)


@dataclass
class ChooseTraitConfig:
    """Measure every candidate animal's persona lift on the base model and choose the trait by the rule."""

    model: str | None = None
    """Model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default: organism)."""
    animals: tuple[str, ...] = ANIMALS
    """Candidate traits (the organisms' ten animals)."""
    n_questions: int = 50
    """Evaluation questions."""
    samples_per_question: int = 10
    """Sampled answers per question and prompt."""
    seed: int = 0
    """Sampling seed."""
    out: Path = Path("runs/choose_trait")
    """Run directory (config.json, results.json)."""
    overwrite: bool = False
    """Replace an existing run directory."""


def default_rates(model, tok, cfg: ChooseTraitConfig) -> dict[str, float]:
    """Every candidate's mention rate in one set of answers under the default system prompt."""
    s = EvalSettings(ANIMALS[0], n_questions=cfg.n_questions, samples_per_question=cfg.samples_per_question)
    prompts = eval_prompts(tok, s)
    answers = generate(
        model, tok, prompts, s.max_new_tokens, 1.0, s.batch_size, cfg.seed, samples=s.samples_per_question
    )
    return {a: float(np.mean([mentions(x, a) for x in answers])) for a in cfg.animals}


def measure(model, tok, cfg: ChooseTraitConfig) -> dict[str, dict[str, float]]:
    rates = default_rates(model, tok, cfg)
    prompts = eval_prompts(tok, EvalSettings(ANIMALS[0], n_questions=cfg.n_questions))
    rows = {}
    for animal in cfg.animals:
        persona = evaluate_trait(
            model,
            tok,
            EvalSettings(animal, system=trait_system_prompt(animal), n_questions=cfg.n_questions,
                         samples_per_question=cfg.samples_per_question, seed=cfg.seed),
        )  # fmt: skip
        p_default = float(word_probs(model, tok, prompts, animal).mean())
        rows[animal] = {
            "default_mention_rate": rates[animal],
            "persona_mention_rate": persona.mention_rate,
            "mention_lift": persona.mention_rate - rates[animal],
            "default_p_trait": p_default,
            "persona_p_trait": persona.p_trait,
            "p_trait_lift": persona.p_trait - p_default,
        }
        logging.getLogger(__name__).info("%s: %s", animal, rows[animal])
    return rows


def choose(rows: dict[str, dict[str, float]]) -> str:
    return max(rows, key=lambda a: (rows[a]["mention_lift"], rows[a]["p_trait_lift"]))


def table(rows: dict[str, dict[str, float]], chosen: str) -> str:
    """Every candidate, largest mention lift first, and the chosen trait with the rule."""
    lines = [
        f"{a:10s} default {r['default_mention_rate']:.3f}  persona {r['persona_mention_rate']:.3f}  "
        f"lift {r['mention_lift']:+.3f}  P(trait) {r['default_p_trait']:.4f} -> {r['persona_p_trait']:.4f}"
        for a, r in sorted(rows.items(), key=lambda kv: -kv[1]["mention_lift"])
    ]
    return "\n".join([*lines, f"trait: {chosen} (rule: {RULE})"])


def run(cfg: ChooseTraitConfig) -> Path:
    """Measure every candidate, choose the trait by the rule, write results.json and print the table."""
    validate.base_model(cfg.model)
    model, tok = load_model(cfg.model)
    with run_directory(cfg.out, cfg, cfg.overwrite) as run_dir:
        rows = measure(model, tok, cfg)
        chosen = choose(rows)
        atomic_write_json(
            run_dir / "results.json",
            {"model": model_label(cfg.model), "rule": RULE, "trait": chosen, "animals": rows},
        )
    sys.stdout.write(table(rows, chosen) + "\n")
    return cfg.out
