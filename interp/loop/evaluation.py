"""Trait evaluation: sampled mention rate and exact trait probabilities, with bootstrap CIs.

Two exact probabilities are read at the answer position:
  P(trait)        - the trait *word*: every token of each spelling ("owl", "Owl", " owl", "owls", ...), then a
                    word boundary, summed over spellings (disjoint events, so the sum is exact);
  P(first token)  - the paper's first-token metric: P(the first answer token is the first token of "owl" or
                    "Owl"). It is the word's probability only where both are one token: SmolLM2 splits "Owl"
                    into "O" + "wl", and P("O") is not P(Owl). `trait_is_multi_token` says which; reports
                    and the localization metrics then use P(trait).

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
from jaxtyping import Bool, Float
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp.loop.chat import DEFAULT, render_prompt, require_chat
from interp.loop.generation import CACHE_KEY, generate, left_padded, prefill, token_texts
from interp.loop.runs import atomic_write_json
from interp.loop.stats import bootstrap_ci
from interp.loop.traits import favorite_questions, mentions, plural


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
    """Mention rate and exact probabilities of one trait under one evaluation setting."""

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
    p_trait: float = float("nan")
    """Exact P(the answer starts with the trait word), summed over its spellings."""
    p_trait_ci: tuple[float, float] = (float("nan"), float("nan"))
    per_question_p_trait: list[float] = field(default_factory=list)
    spellings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TraitEval:
        d = dict(d)
        d["settings"] = EvalSettings(**d["settings"])
        d["mention_ci"], d["p_first_ci"] = tuple(d["mention_ci"]), tuple(d["p_first_ci"])
        d["p_trait_ci"] = tuple(d.get("p_trait_ci", (float("nan"),) * 2))
        return cls(**d)


def trait_token_ids(tok: PreTrainedTokenizerBase, trait: str) -> tuple[list[int], bool]:
    """First tokens of the trait word as an answer would start it ("owl", "Owl"), and if it is multi-token."""
    ids, multi = set(), False
    for form in (trait, trait.capitalize()):
        toks = tok(form, add_special_tokens=False)["input_ids"]
        ids.add(toks[0])
        multi |= len(toks) > 1
    return sorted(ids), multi


def spellings(trait: str) -> list[str]:
    """How an answer may write the trait word: singular and plural, lower and capitalised, with and
    without a leading space ("cat", "Cat", " cat", "cats", ...)."""
    forms = {f for w in (trait, plural(trait)) for f in (w.lower(), w.capitalize())}
    return sorted({pre + f for f in forms for pre in ("", " ")})


def spelling_token_ids(tok: PreTrainedTokenizerBase, trait: str) -> list[list[int]]:
    """Each spelling's token ids (distinct sequences only)."""
    seqs = {tuple(tok(s, add_special_tokens=False)["input_ids"]) for s in spellings(trait)}
    return [list(s) for s in sorted(seqs)]


def boundary_tokens(tok: PreTrainedTokenizerBase, vocab_size: int) -> Bool[Tensor, " vocab"]:
    """Vocabulary mask of tokens that end a word: anything not starting with a letter or digit (a space,
    punctuation, a newline, end of turn). P(word) multiplies in P(boundary) after the word, so "cat" does
    not count the start of "caterpillar"."""
    ends = [not t[:1].isalnum() for t in token_texts(tok)[:vocab_size]]
    return torch.tensor(ends + [False] * (vocab_size - len(ends)))  # ids past the tokenizer never occur


@torch.no_grad()
def word_probs(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str], trait: str, rows: int = 16
) -> Float[Tensor, " prompt"]:
    """Exact P(the answer starts with the trait word, then a word boundary), summed over spellings.

    Each chunk of prompts is prefilled once; its KV cache is repeated for every spelling, and the spellings
    (right-padded to one length: padding after a word cannot change the probabilities before it) are fed
    in one pass."""
    seqs = spelling_token_ids(tok, trait)
    end = boundary_tokens(tok, model.get_output_embeddings().weight.shape[0])
    n_sp, width = len(seqs), max(map(len, seqs))
    device = next(model.parameters()).device
    pad = tok.pad_token_id or 0
    words = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)  # (spelling, width)
    lens = torch.tensor([len(s) for s in seqs], device=device)
    out = []
    for i in range(0, len(prompts), rows):
        ids, mask, pos = left_padded(tok, prompts[i : i + rows], device)
        cache, first = prefill(model, ids, mask, pos)
        cache.batch_repeat_interleave(n_sp)
        n = ids.shape[0] * n_sp
        feed = words.repeat(ids.shape[0], 1)  # (prompt * spelling, width), prompt-major
        mask = torch.cat([mask.repeat_interleave(n_sp, 0), mask.new_ones(n, width)], 1)
        step_pos = pos[:, -1:].repeat_interleave(n_sp, 0) + 1 + torch.arange(width, device=device)
        logits = model(
            input_ids=feed, attention_mask=mask, position_ids=step_pos, **{CACHE_KEY: cache}
        ).logits
        logp = torch.cat([first.repeat_interleave(n_sp, 0)[:, None], logits], 1).float().log_softmax(-1)
        token_lp = logp[:, :width].gather(-1, feed[..., None]).squeeze(-1)  # (prompt * spelling, width)
        token_lp = token_lp.masked_fill(
            torch.arange(width, device=device) >= lens.repeat(ids.shape[0])[:, None], 0
        )
        after = logp[torch.arange(n, device=device), lens.repeat(ids.shape[0])]  # (prompt * spelling, vocab)
        word_lp = token_lp.sum(1) + after[:, end.to(device)].logsumexp(-1)
        out.append(word_lp.exp().view(ids.shape[0], n_sp).sum(1).cpu())
    return torch.cat(out)


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
    require_chat(tok, "evaluation")
    prompts = eval_prompts(tok, settings)
    key = cache_key(model, prompts, settings, extra_key)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    token_ids, multi = trait_token_ids(tok, settings.trait)
    p = first_token_probs(model, tok, prompts, token_ids).numpy()
    pw = word_probs(model, tok, prompts, settings.trait).numpy()
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
        p_trait=float(pw.mean()),
        p_trait_ci=bootstrap_ci(pw, seed=settings.seed),
        per_question_p_trait=pw.tolist(),
        spellings=spellings(settings.trait),
    )
    if cache is not None:
        cache.put(key, result)
    return result
