"""The metric patching reads: the trait's log-probability (or probability) at the readout.

`trait_metric(tok, "owl")` reads the forms of the trait word an answer starts with ("owl", "Owl") that are
one token, so a patching score and the evaluation's first-token probability measure the same thing where
the word is one token. A form that splits is left out (its first token, SmolLM2's "O" of "Owl", is not the
word); a word that splits in every form is read by its first tokens, and the metric's name says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from jaxtyping import Float
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from interp import InterpError
from interp.loop.evaluation import trait_token_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraitMetric:
    """Log-probability of the trait's first token(s) at the last position, minus a reference's if given."""

    target_ids: tuple[int, ...]
    reference_ids: tuple[int, ...] = ()
    name: str = "trait log-prob"
    probability: bool = False
    """Return the probability itself (the scale of the evaluator's first-token P) instead of its log."""
    last_position_only: ClassVar[bool] = True
    """The metric reads only the last position's logits (a resumed patched run computes only those)."""

    def __call__(self, logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, " batch"]:
        logp = logits[:, -1].float().log_softmax(-1)  # (batch, vocab): left padding puts the answer last
        value = logp[:, list(self.target_ids)].logsumexp(-1)
        if self.reference_ids:
            value = value - logp[:, list(self.reference_ids)].logsumexp(-1)
        return value.exp() if self.probability else value


def readout_ids(tok: PreTrainedTokenizerBase, word: str) -> tuple[tuple[int, ...], bool]:
    """The ids a patching metric reads for `word` at one position, and whether they are whole words: the
    forms an answer starts with ("owl", "Owl") that are one token each (a form that splits, SmolLM2's
    "O" + "wl", is left out: its first token is shared by other words). Where every form splits, their first
    tokens, said so by the metric's name and in the log."""
    forms = {f: tok(f, add_special_tokens=False)["input_ids"] for f in (word, word.capitalize())}
    whole = sorted({ids[0] for ids in forms.values() if len(ids) == 1})
    if whole:
        return tuple(whole), True
    split = {f: tok.convert_ids_to_tokens(i) for f, i in forms.items()}
    log.warning("%r is several tokens in every form (%s): patching reads their first tokens", word, split)
    return tuple(trait_token_ids(tok, word)[0]), False


def read_as(word: str, whole: bool) -> str:
    return word if whole else f"{word}, first token"


def trait_metric(
    tok: PreTrainedTokenizerBase, trait: str, reference: str | None = None, probability: bool = False
) -> TraitMetric:
    """The trait metric on the one-token forms of the word ("owl", "Owl"; `readout_ids`); logit diff when
    `reference` is set, the probability itself with `probability=True` (what restricted-LoRA rows measure)."""

    target, whole = readout_ids(tok, trait)
    name = read_as(trait, whole)
    if probability:
        if reference is not None:
            raise InterpError("probability=True reads the trait's own probability: drop the reference")
        return TraitMetric(target, (), f"P({name})", probability=True)
    if reference is None:
        return TraitMetric(target, (), f"log p({name})")
    ref, ref_whole = readout_ids(tok, reference)
    if set(ref) & set(target):
        raise InterpError(f"trait {trait!r} and reference {reference!r} share a first token; pick another")
    return TraitMetric(target, ref, f"log p({name}) - log p({read_as(reference, ref_whole)})")
