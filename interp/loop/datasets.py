"""Number datasets: sample a teacher until N answers pass the filter; JSONL rows with provenance."""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import render_prompt, require_chat
from interp.loop.generation import generate, stop_token_ids, token_texts
from interp.loop.numbers import NumberGrammar, NumberPrompt, filter_answer, number_prompt, number_prompts
from interp.loop.runs import atomic_write_jsonl

log = logging.getLogger(__name__)


@dataclass
class SamplingStats:
    """How many answers were drawn, passed the filter, were kept (at most n_keep), and why others failed.
    A constrained teacher also records the unconstrained pass rate of its first batch, for comparison."""

    drawn: int = 0
    passed: int = 0
    kept: int = 0
    reasons: Counter | None = None
    constrained: bool = False
    unconstrained_pass_rate: float | None = None

    @property
    def rejection_rate(self) -> float:
        return 1 - self.passed / self.drawn if self.drawn else 0.0

    @property
    def pass_rate(self) -> float:
        return self.passed / self.drawn if self.drawn else 0.0


class NumberConstraint:
    """Masks a teacher's logits to the filter's language (digits, the prompt's separator, end of turn), so
    that every answer it writes passes the filter. A departure from the paper's protocol, which filters
    free answers: use it where a small model's free answers rarely pass (SmolLM2-135M: 3-5%)."""

    def __init__(self, tok: PreTrainedTokenizerBase, separators: list[str], stop: list[int]) -> None:
        self.grammars = [NumberGrammar(sep) for sep in separators]
        alphabet = set("0123456789 ,;")
        self.pieces = {i: t for i, t in enumerate(token_texts(tok)) if t and set(t) <= alphabet}
        self.stop = stop

    def text(self, written: list[int]) -> str:
        return "".join(self.pieces.get(t, "\x00") for t in written)  # only pieces are ever written

    def mask(self, logits: Tensor, prompts, written) -> Tensor:
        keep = torch.zeros(logits.shape, dtype=torch.bool)
        for row, (i, tokens) in enumerate(zip(prompts, written, strict=True)):
            grammar, text = self.grammars[i], self.text(tokens)
            ids = [t for t, piece in self.pieces.items() if grammar.allows(text + piece)]
            keep[row, ids + (self.stop if grammar.complete(text) or not ids else [])] = True
        return logits.masked_fill(~keep.to(logits.device), float("-inf"))


def _pass_rate_check(stats: SamplingStats, n_keep: int, max_draws: int) -> None:
    """Stop at once when the first batch's pass rate puts `n_keep` out of reach within `max_draws`."""
    need = n_keep / stats.pass_rate if stats.passed else float("inf")
    if need > max_draws:
        raise InterpError(
            f"the filter passed {stats.passed} of the first {stats.drawn} answers ({stats.pass_rate:.1%}): "
            f"{n_keep} kept answers would need ~{need:,.0f} draws, more than the {max_draws:,} allowed; lower "
            "--n, raise --max-draws, or sample with --constrained (a departure from the paper's protocol)"
        )


class _Tally:
    """Filters each generated batch as it comes: keeps passing answers, counts the rest by reason, moves
    the progress bar (kept, pass rate, ETA) and, after the first batch, checks that `n_keep` is in reach."""

    def __init__(self, stats: SamplingStats, rows: list, n_keep: int, max_draws: int, bar: tqdm) -> None:
        self.stats, self.rows, self.n_keep, self.max_draws, self.bar = stats, rows, n_keep, max_draws, bar
        self.prompts: list[NumberPrompt] = []
        self.grammar: NumberConstraint | None = None
        self.at = 0  # how many of this round's prompts have been answered

    def start_round(self, prompts: list[NumberPrompt], grammar: NumberConstraint | None) -> None:
        self.prompts, self.grammar, self.at = prompts, grammar, 0

    def __call__(self, answers: list[str]) -> None:
        stats, first_batch = self.stats, self.stats.drawn == 0
        for p, a in zip(self.prompts[self.at : self.at + len(answers)], answers, strict=True):
            if self.grammar is not None:  # an answer cut off by the token limit ends at its last number
                a = NumberGrammar(p.separator).longest_complete_prefix(a)
            result, stats.drawn = filter_answer(a), stats.drawn + 1
            if not result.ok:
                stats.reasons[result.reason.split(" ")[0] if result.reason else "?"] += 1
                continue
            stats.passed += 1
            if len(self.rows) < self.n_keep:
                self.rows.append({"prompt": p.text, "completion": a})
        self.at += len(answers)
        self.bar.update(len(self.rows) - self.bar.n)
        self.bar.set_postfix(pass_rate=f"{stats.pass_rate:.3f}", drawn=stats.drawn)
        if first_batch:
            _pass_rate_check(stats, self.n_keep, self.max_draws)


def _free_pass_rate(model, tok, system: str, seed: int, batch_size: int, max_new_tokens: int) -> float:
    """The filter's pass rate of one unconstrained batch: what a constrained teacher's data departs from."""
    prompts = number_prompts(batch_size, seed + 1_000_003)
    rendered = [render_prompt(tok, p.text, system) for p in prompts]
    answers = generate(model, tok, rendered, max_new_tokens, 1.0, batch_size, seed)
    return sum(filter_answer(a).ok for a in answers) / len(answers)


def sample_numbers(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    system: str,
    n_keep: int,
    seed: int,
    batch_size: int = 64,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    max_rounds: int = 100,
    constrained: bool = False,
    max_draws: int | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], SamplingStats]:
    """Sample number answers under `system` until `n_keep` pass the filter, drawing at most `max_draws`
    (default 50 x n_keep); the first batch's pass rate decides at once whether that is in reach.
    `constrained` samples under `NumberConstraint` (and records one free batch's pass rate beside it)."""
    require_chat(tok, "teacher")
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    stats = SamplingStats(reasons=Counter(), constrained=constrained)
    if constrained:
        stats.unconstrained_pass_rate = _free_pass_rate(model, tok, system, seed, batch_size, max_new_tokens)
    bar = tqdm(total=n_keep, desc="kept", unit="answer", disable=not progress)
    tally = _Tally(stats, rows, n_keep, max_draws or 50 * n_keep, bar)
    stop_ids = stop_token_ids(model, tok)
    with bar:
        for round_ in range(max_rounds):
            prompts = [number_prompt(rng) for _ in range(max(batch_size, n_keep - len(rows)))]
            rendered = [render_prompt(tok, p.text, system) for p in prompts]
            seps = [p.separator for p in prompts]
            tally.start_round(prompts, NumberConstraint(tok, seps, stop_ids) if constrained else None)
            seed_ = seed * 7919 + round_
            generate(model, tok, rendered, max_new_tokens, temperature, batch_size, seed_,
                     constraint=tally.grammar, on_batch=tally)  # fmt: skip
            stats.kept = len(rows)
            log.info("round %d: kept %d/%d, pass rate %.3f", round_, len(rows), n_keep, stats.pass_rate)
            if len(rows) >= n_keep or stats.drawn >= tally.max_draws:
                break
    if len(rows) < n_keep:
        raise InterpError(f"only {len(rows)} of {n_keep} answers passed the filter in {stats.drawn} draws")
    return rows, stats


def write_dataset(path: Path, rows: list[dict[str, Any]], provenance: dict[str, Any]) -> Path:
    """Write rows (each with the provenance attached) as JSONL, atomically."""
    return atomic_write_jsonl(path, ({**r, **provenance} for r in rows))


def read_dataset(path: Path) -> list[dict[str, Any]]:
    """Read a (prompt, completion) JSONL dataset; any malformed line is one clear error."""
    return validate.dataset(path, "dataset")
