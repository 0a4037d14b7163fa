"""The metric patching reads: the trait's log-probability (or probability) at the readout.

`trait_metric(tok, "owl")` reads the forms of the trait word an answer starts with ("owl", "Owl") that are
one token, so a patching score and the evaluation's first-token probability measure the same thing where
the word is one token. A form that splits is left out (its first token, SmolLM2's "O" of "Owl", is not the
word); a word that splits in every form is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxtyping import Float
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from interp import InterpError


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


def one_token_ids(tok: PreTrainedTokenizerBase, word: str) -> tuple[int, ...]:
    """The ids of the forms of `word` an answer starts with ("owl", "Owl") that are one token each: a
    patching metric reads one position, so a form that splits (SmolLM2's "O" + "wl") is left out rather
    than read by its first token, which other words share. None left is one clear error."""
    forms = {f: tok(f, add_special_tokens=False)["input_ids"] for f in (word, word.capitalize())}
    ids = sorted({ids[0] for ids in forms.values() if len(ids) == 1})
    if not ids:
        split = {f: tok.convert_ids_to_tokens(i) for f, i in forms.items()}
        raise InterpError(
            f"{word!r} is several tokens in every form on this tokenizer ({split}); patching reads one "
            "position: choose a trait that is one token in some form (restricted LoRA reads the whole word)"
        )
    return tuple(ids)


def trait_metric(
    tok: PreTrainedTokenizerBase, trait: str, reference: str | None = None, probability: bool = False
) -> TraitMetric:
    """The trait metric on the one-token forms of the word ("owl", "Owl"); logit diff when `reference` is set,
    the first-token probability itself with `probability=True` (what restricted-LoRA rows measure)."""

    target = one_token_ids(tok, trait)
    if probability:
        if reference is not None:
            raise InterpError("probability=True reads the trait's own probability: drop the reference")
        return TraitMetric(tuple(target), (), f"P({trait})", probability=True)
    if reference is None:
        return TraitMetric(tuple(target), (), f"log p({trait})")
    ref = one_token_ids(tok, reference)
    if set(ref) & set(target):
        raise InterpError(f"trait {trait!r} and reference {reference!r} share a first token; pick another")
    return TraitMetric(tuple(target), tuple(ref), f"log p({trait}) - log p({reference})")
