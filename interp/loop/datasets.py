"""Number datasets: sample a teacher until N answers pass the filter; JSONL rows with provenance."""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import render_prompt
from interp.loop.generation import generate
from interp.loop.numbers import filter_answer, number_prompt
from interp.loop.runs import atomic_write_jsonl

log = logging.getLogger(__name__)


@dataclass
class SamplingStats:
    """How many answers were drawn, passed the filter, were kept (at most n_keep), and why others failed."""

    drawn: int = 0
    passed: int = 0
    kept: int = 0
    reasons: Counter | None = None

    @property
    def rejection_rate(self) -> float:
        return 1 - self.passed / self.drawn if self.drawn else 0.0


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
) -> tuple[list[dict[str, Any]], SamplingStats]:
    """Sample number answers under `system` until `n_keep` pass the filter."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    stats = SamplingStats(reasons=Counter())
    for round_ in range(max_rounds):
        prompts = [number_prompt(rng) for _ in range(max(batch_size, n_keep - len(rows)))]
        rendered = [render_prompt(tok, p.text, system) for p in prompts]
        answers = generate(
            model, tok, rendered, max_new_tokens, temperature, batch_size, seed * 7919 + round_
        )
        for p, a in zip(prompts, answers, strict=True):
            result = filter_answer(a)
            stats.drawn += 1
            if not result.ok:
                stats.reasons[result.reason.split(" ")[0] if result.reason else "?"] += 1
                continue
            stats.passed += 1
            if len(rows) < n_keep:
                rows.append({"prompt": p.text, "completion": a})
        stats.kept = len(rows)
        log.info("round %d: kept %d/%d, rejection rate %.3f", round_, len(rows), n_keep, stats.rejection_rate)
        if len(rows) >= n_keep:
            return rows, stats
    raise InterpError(f"only {len(rows)} of {n_keep} answers passed the filter in {max_rounds} rounds")


def write_dataset(path: Path, rows: list[dict[str, Any]], provenance: dict[str, Any]) -> Path:
    """Write rows (each with the provenance attached) as JSONL, atomically."""
    return atomic_write_jsonl(path, ({**r, **provenance} for r in rows))


def read_dataset(path: Path) -> list[dict[str, Any]]:
    """Read a (prompt, completion) JSONL dataset; any malformed line is one clear error."""
    return validate.dataset(path, "dataset")
