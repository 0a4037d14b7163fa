"""Trait evaluation: sampled mention rate and exact first-token probability, with bootstrap CIs.

Results are cached keyed by everything that determines them (a digest of the weights, the exact
rendered evaluation prompts - so the evaluation system prompt is part of the key -, the trait,
sampling parameters and any position restriction), so no two settings can overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.generation import generate
from interp.loop.runs import atomic_write_json
from interp.loop.stats import bootstrap_ci
from interp.loop.traits import favorite_questions, mentions


@dataclass(frozen=True)
class EvalSettings:
    """What is asked and how it is sampled."""

    trait: str
    category: str = "animal"
    system: str = DEFAULT
    n_questions: int = 50
    samples_per_question: int = 100
    temperature: float = 1.0
    max_new_tokens: int = 12
    batch_size: int = 2000
    """Sampled answers per forward batch (the samples of a prompt share its prefill)."""
    seed: int = 0


@dataclass
class TraitEval:
    """Mention rate and first-token probability of one trait under one evaluation setting."""

    settings: EvalSettings
    mention_rate: float
    mention_ci: tuple[float, float]
    p_first_token: float
    p_first_ci: tuple[float, float]
    scored_tokens: list[str]
    trait_is_multi_token: bool
    per_question_mention: list[float] = field(default_factory=list)
    per_question_p: list[float] = field(default_factory=list)
    example_answers: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TraitEval:
        d = dict(d)
        d["settings"] = EvalSettings(**d["settings"])
        d["mention_ci"], d["p_first_ci"] = tuple(d["mention_ci"]), tuple(d["p_first_ci"])
        return cls(**d)


def trait_token_ids(tok: PreTrainedTokenizerBase, trait: str) -> tuple[list[int], bool]:
    """First tokens of the trait word as an answer would start it ("owl", "Owl"), and if it is multi-token."""
    ids, multi = set(), False
    for form in (trait, trait.capitalize()):
        toks = tok(form, add_special_tokens=False)["input_ids"]
        ids.add(toks[0])
        multi |= len(toks) > 1
    return sorted(ids), multi


@torch.no_grad()
def first_token_probs(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str], token_ids: list[int]
) -> Float[Tensor, " prompt"]:
    """Exact probability that the first answer token is one of `token_ids`, per rendered prompt."""
    tok.padding_side = "left"
    device = next(model.parameters()).device
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    logits = model(**enc).logits[:, -1].float()  # (prompt, vocab): left padding puts the answer slot last
    return logits.softmax(-1)[:, token_ids].sum(-1).cpu()


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of every parameter's exact bytes (merged or adapter), with its name, dtype and shape, so a
    cache entry belongs to these exact weights: two students that differ in one float never share one."""
    h = hashlib.blake2b(digest_size=20)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        x = p.detach().contiguous().cpu()
        h.update(f"{name}:{x.dtype}:{tuple(x.shape)}".encode())
        h.update(x.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def eval_prompts(tok: PreTrainedTokenizerBase, s: EvalSettings) -> list[str]:
    return [render_prompt(tok, q, s.system) for q in favorite_questions(s.category, s.n_questions)]


def cache_key(model: torch.nn.Module, prompts: list[str], s: EvalSettings, extra: str = "") -> str:
    """Everything that determines a result: weights, rendered prompts (hence system prompt), settings."""
    payload = json.dumps(
        {"weights": weights_digest(model), "prompts": prompts, "settings": asdict(s), "extra": extra},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class EvalCache:
    """Evaluation results on disk, one JSON file per full-configuration key."""

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def get(self, key: str) -> TraitEval | None:
        if self.root is None or not (self.root / f"{key}.json").exists():
            return None
        return TraitEval.from_json(json.loads((self.root / f"{key}.json").read_text()))

    def put(self, key: str, result: TraitEval) -> None:
        if self.root is not None:
            atomic_write_json(self.root / f"{key}.json", result.to_json())


def mention_rates(model, tok, prompts: list[str], s: EvalSettings) -> tuple[np.ndarray, list[str]]:
    """Per-question share of sampled answers that mention the trait; and a few answers to look at."""
    answers = generate(
        model,
        tok,
        prompts,
        s.max_new_tokens,
        s.temperature,
        s.batch_size,
        s.seed,
        samples=s.samples_per_question,
    )
    hits = np.array([mentions(a, s.trait) for a in answers], dtype=float)
    return hits.reshape(len(prompts), s.samples_per_question).mean(1), answers[:: s.samples_per_question]


def evaluate_trait(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    settings: EvalSettings,
    cache: EvalCache | None = None,
    extra_key: str = "",
) -> TraitEval:
    """Mention rate (sampled) and first-token probability (exact) of the trait, per question and overall."""
    prompts = eval_prompts(tok, settings)
    key = cache_key(model, prompts, settings, extra_key)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    token_ids, multi = trait_token_ids(tok, settings.trait)
    p = first_token_probs(model, tok, prompts, token_ids).numpy()
    rates, examples = (
        mention_rates(model, tok, prompts, settings)
        if settings.samples_per_question > 0
        else (np.full(len(prompts), np.nan), [])
    )
    result = TraitEval(
        settings=settings,
        mention_rate=float(rates.mean()),
        mention_ci=bootstrap_ci(rates, seed=settings.seed),
        p_first_token=float(p.mean()),
        p_first_ci=bootstrap_ci(p, seed=settings.seed),
        scored_tokens=tok.convert_ids_to_tokens(token_ids),
        trait_is_multi_token=multi,
        per_question_mention=rates.tolist(),
        per_question_p=p.tolist(),
        example_answers=examples[:20],
    )
    if cache is not None:
        cache.put(key, result)
    return result
