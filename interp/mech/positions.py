"""Token classes: which part of a rendered chat prompt each position belongs to.

The paper (claim 4) locates the subliminal shift at tokens shared by the fine-tuning and evaluation
contexts: the entity name in the default system prompt ("Qwen"), the rest of that prompt, and the
chat-template tokens. This module labels every position of a prompt with one class:

  entity     - the entity's name inside the system prompt ("Qwen" in "You are Qwen, created by ...")
  system     - the rest of the system prompt's content
  template   - text the chat template adds: special tokens, role names, its newlines
  user       - the user's message
  assistant_header - what `add_generation_prompt` appends ("<|im_start|>assistant\\n")
  generated  - everything after the assistant header (the model's answer)
  pad        - left padding in a batch

It works for any chat template: the template is rendered once with sentinel contents, which splits it
into its fixed pieces (the "skeleton"); a prompt is then parsed against that skeleton and the classes
are carried from characters to tokens through the tokenizer's offsets. A tokenizer without a chat
template (a base model) reads plain text: every prompt token is "user" (`label_plain` marks an answer
"generated"). Claim 4's disjoint position sets are built on these classes in `interp.mech.sets`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from interp import InterpError
from interp.loop.chat import NONE, render_messages, render_prompt
from interp.loop.identity import detect_identity

ENTITY, SYSTEM, TEMPLATE, USER, HEADER, GENERATED, PAD = (
    "entity",
    "system",
    "template",
    "user",
    "assistant_header",
    "generated",
    "pad",
)
CLASSES = (ENTITY, SYSTEM, TEMPLATE, USER, HEADER, GENERATED)
_SYS, _USR = "\x1fSYS\x1f", "\x1fUSR\x1f"


def detect_entity(system_text: str | None) -> str | None:
    """The entity a system prompt names: "You are Qwen, created by ..." -> "Qwen", "... named SmolLM,
    trained by ..." -> "SmolLM" (None if it names none; `interp.loop.identity` holds the rules)."""
    return detect_identity(system_text).entity


@dataclass(frozen=True)
class Skeleton:
    """The fixed text pieces of a chat template around a single user turn."""

    with_system: tuple[str, str, str]  # before system content, between system and user, after user
    no_system: tuple[str, str] | None  # before user, after user (None if the template cannot drop it)
    header: str  # what add_generation_prompt appends (the assistant header)


_SKELETONS: dict[tuple[int, str], Skeleton] = {}


def _split(text: str, *marks: str) -> list[str]:
    pieces, rest = [], text
    for mark in marks:
        head, found, rest = rest.partition(mark)
        if not found:
            raise InterpError(f"the chat template does not copy message contents verbatim (lost {mark!r})")
        pieces.append(head)
    return [*pieces, rest]


def skeleton(tok: PreTrainedTokenizerBase) -> Skeleton:
    """Render the tokenizer's chat template with sentinel contents and split it into its fixed pieces."""
    key = (id(tok), str(getattr(tok, "chat_template", "")))
    if key not in _SKELETONS:
        user = [{"role": "user", "content": _USR}]
        a, b, c = _split(render_messages(tok, user, _SYS, gen=True), _SYS, _USR)
        no_gen = render_messages(tok, user, _SYS, gen=False)
        full = a + _SYS + b + _USR + c
        header = full[len(no_gen) :] if full.startswith(no_gen) else ""
        try:
            a2, c2 = _split(render_messages(tok, user, NONE, gen=True), _USR)
            no_system: tuple[str, str] | None = (a2, c2)
        except InterpError:
            no_system = None
        _SKELETONS[key] = Skeleton((a, b, c), no_system, header)
    return _SKELETONS[key]


def _parse(text: str, sk: Skeleton) -> list[tuple[int, int, str]] | None:
    """Character spans (start, end, class) of `text` against the skeleton, or None if it does not fit."""
    a, b, c = sk.with_system
    if text.startswith(a) and (j := text.find(b, len(a))) >= 0 and (k := text.find(c, j + len(b))) >= 0:
        spans = [(0, len(a), TEMPLATE), (len(a), j, SYSTEM), (j, j + len(b), TEMPLATE), (j + len(b), k, USER)]
        end = k + len(c)
    elif (
        sk.no_system
        and text.startswith(sk.no_system[0])
        and (k := text.find(sk.no_system[1], len(sk.no_system[0]))) >= 0
    ):
        a2, c = sk.no_system
        spans, end = [(0, len(a2), TEMPLATE), (len(a2), k, USER)], k + len(c)
    else:
        return None
    cut = end - len(sk.header) if c.endswith(sk.header) else end
    return spans + [(k, cut, TEMPLATE), (cut, end, HEADER), (end, len(text), GENERATED)]


def has_chat_template(tok: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tok, "chat_template", None))


def char_classes(tok: PreTrainedTokenizerBase, text: str, entity: str | None = None) -> list[str]:
    """The class of every character of a rendered prompt (entity detected from its system prompt).

    Without a chat template (a base model) the text is plain: every character is "user"."""
    if not has_chat_template(tok):
        return [USER] * len(text)
    spans = _parse(text, skeleton(tok))
    if spans is None:
        raise InterpError(f"text was not rendered by this tokenizer's chat template: {text[:80]!r}...")
    classes = [TEMPLATE] * len(text)
    for start, end, cls in spans:
        classes[start:end] = [cls] * (end - start)
        if cls == SYSTEM:
            name = entity or detect_entity(text[start:end])
            for m in re.finditer(rf"\b{re.escape(name)}\b", text[start:end]) if name else ():
                classes[start + m.start() : start + m.end()] = [ENTITY] * len(name)
    return classes


def _token_class(classes: list[str], text: str, start: int, end: int) -> str:
    """A token takes the class of its first non-space character (" Qwen" is an entity token)."""
    if start >= end:
        return TEMPLATE
    for i in range(start, end):
        if not text[i].isspace():
            return classes[i]
    return classes[start]


@dataclass(frozen=True)
class PromptLabels:
    """One prompt's tokens with the class of every position."""

    text: str
    ids: list[int]
    tokens: list[str]
    classes: list[str]
    offsets: list[tuple[int, int]]

    def positions(self, *classes: str) -> list[int]:
        """Indices of the positions whose class is one of `classes`."""
        check_classes(classes)
        return [i for i, c in enumerate(self.classes) if c in classes]


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """`classes` if each is a known token class, else a clear error."""
    bad = [c for c in classes if c not in (*CLASSES, PAD)]
    if bad:
        raise InterpError(f"unknown token class(es) {bad}; choose from {list(CLASSES)}")
    return tuple(classes)


def _offsets(tok: PreTrainedTokenizerBase, text: str, ids: Sequence[int] | None) -> tuple[list[int], list]:
    """Token ids and character offsets of `text`; offsets rebuilt by prefix decoding for foreign ids."""
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    if ids is None or list(enc["input_ids"]) == list(ids):
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    # Sampled ids need not be the canonical tokenization of their text: decode prefix by prefix.
    offsets, prev = [], 0
    for i in range(len(ids)):
        end = min(
            len(tok.decode(ids[: i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)),
            len(text),
        )
        offsets.append((min(prev, end), end))
        prev = end
    return list(ids), offsets


def label_text(
    tok: PreTrainedTokenizerBase, text: str, entity: str | None = None, ids: Sequence[int] | None = None
) -> PromptLabels:
    """Label every token of `text` (a prompt rendered by `tok`'s chat template, optionally with an answer)."""
    classes = char_classes(tok, text, entity)
    ids, offsets = _offsets(tok, text, ids)
    tokens = tok.convert_ids_to_tokens(ids)
    labels = [_token_class(classes, text, s, e) for s, e in offsets]
    return PromptLabels(text=text, ids=ids, tokens=tokens, classes=labels, offsets=offsets)


def label_plain(tok: PreTrainedTokenizerBase, prompt: str, answer: str = "") -> PromptLabels:
    """Label plain text (no chat template, e.g. a base model): the prompt is "user", the answer "generated"."""
    text = prompt + answer
    ids, offsets = _offsets(tok, text, None)
    classes = [USER if s < len(prompt) else GENERATED for s, _ in offsets]
    return PromptLabels(text, ids, tok.convert_ids_to_tokens(ids), classes, offsets)


def label_prompt(
    tok: PreTrainedTokenizerBase, user: str, system: str = "default", entity: str | None = None
) -> PromptLabels:
    """Render `user` under a system prompt setting and label every position of the prompt."""
    return label_text(tok, render_prompt(tok, user, system), entity)


def _row_ids(ids: Tensor, mask: Tensor | None, pad_id: int | None) -> tuple[int, list[int]]:
    """(number of left-padding positions, the unpadded ids) of one row."""
    row = ids.tolist()
    if mask is not None:
        n_pad = int((mask == 0).sum())
        if n_pad < len(row) and int(mask[n_pad:].min()) == 0:
            raise InterpError("only left padding is supported (found padding inside or right of a row)")
    else:
        n_pad = next((i for i, t in enumerate(row) if t != pad_id), len(row)) if pad_id is not None else 0
    return n_pad, row[n_pad:]


def label_ids(
    tok: PreTrainedTokenizerBase,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    entity: str | None = None,
) -> list[list[str]]:
    """The class of every position of a left-padded batch of token ids ("pad" on padding)."""
    out = []
    for b in range(input_ids.shape[0]):
        mask = None if attention_mask is None else attention_mask[b]
        n_pad, row = _row_ids(input_ids[b], mask, tok.pad_token_id)
        text = tok.decode(row, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append([PAD] * n_pad + label_text(tok, text, entity, ids=row).classes)
    return out


@dataclass(frozen=True)
class LabelledBatch:
    """Left-padded prompts with the token strings and class of every position."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    tokens: list[list[str]]
    classes: list[list[str]]
    texts: list[str]

    def class_mask(self, *classes: str) -> Bool[Tensor, "batch pos"]:
        """True at the positions whose class is one of `classes`."""
        check_classes(classes)
        return torch.tensor([[c in classes for c in row] for row in self.classes], dtype=torch.bool)


def encode_prompts(
    tok: PreTrainedTokenizerBase, texts: Sequence[str], entity: str | None = None
) -> LabelledBatch:
    """Tokenize rendered prompts into a left-padded batch and label every position."""
    if not texts:
        raise InterpError("no prompts were given")
    labels = [label_text(tok, t, entity) for t in texts]
    width = max(len(lab.ids) for lab in labels)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(texts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    tokens, classes = [], []
    for b, lab in enumerate(labels):
        n = width - len(lab.ids)
        ids[b, n:] = torch.tensor(lab.ids)
        mask[b, n:] = 1
        tokens.append([""] * n + lab.tokens)
        classes.append([PAD] * n + lab.classes)
    return LabelledBatch(ids, mask, tokens, classes, list(texts))


@dataclass(frozen=True)
class Positions:
    """A set of positions, resolved per batch: by token class, by substring, by index, or all / none.

    Build one with `by_class`, `by_substring`, `by_indices`, `all_positions` or `no_positions`.
    """

    kind: str
    classes: tuple[str, ...] = ()
    substring: str = ""
    indices: tuple[int, ...] = ()
    excluded: tuple[int, ...] = ()  # indices (in each unpadded prompt) taken out of the set

    def excluding(self, *indices: int) -> Positions:
        """The same set without the given positions of each prompt (negative indices count from its end):
        `by_class(HEADER).excluding(-1)` is the assistant header without the readout position."""
        return replace(self, excluded=self.excluded + tuple(int(i) for i in indices))

    def mask(
        self,
        tok: PreTrainedTokenizerBase,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        entity: str | None = None,
    ) -> Bool[Tensor, "batch pos"]:
        """True at the selected positions of each row (never at padding)."""
        out = _RESOLVERS[self.kind](self, tok, input_ids, attention_mask, entity)
        if self.excluded:
            out = out & ~by_indices(*self.excluded).mask(tok, input_ids, attention_mask, entity)
        return out


def by_class(*classes: str) -> Positions:
    """The positions of the given token classes, e.g. `by_class(ENTITY)`."""
    if not classes:
        raise InterpError("by_class needs at least one token class")
    return Positions("class", classes=check_classes(classes))


def by_substring(text: str) -> Positions:
    """The tokens overlapping every occurrence of `text` in the prompt (an error if it does not occur)."""
    if not text:
        raise InterpError("by_substring needs a non-empty string")
    return Positions("substring", substring=text)


def by_indices(*indices: int) -> Positions:
    """Explicit positions in each unpadded prompt (negative indices count from its end)."""
    if not indices:
        raise InterpError("by_indices needs at least one index")
    return Positions("indices", indices=tuple(int(i) for i in indices))


def all_positions() -> Positions:
    return Positions("all")


def no_positions() -> Positions:
    return Positions("none")


def _rows(tok, input_ids, attention_mask) -> list[tuple[int, list[int]]]:
    masks = [None] * input_ids.shape[0] if attention_mask is None else list(attention_mask)
    return [_row_ids(input_ids[b], masks[b], tok.pad_token_id) for b in range(input_ids.shape[0])]


def _resolve_class(sel: Positions, tok, input_ids, attention_mask, entity) -> Tensor:
    labels = label_ids(tok, input_ids, attention_mask, entity)
    return torch.tensor([[c in sel.classes for c in row] for row in labels], dtype=torch.bool)


def _resolve_substring(sel: Positions, tok, input_ids, attention_mask, entity) -> Tensor:
    out = torch.zeros(input_ids.shape, dtype=torch.bool)
    for b, (n_pad, row) in enumerate(_rows(tok, input_ids, attention_mask)):
        text = tok.decode(row, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        spans = [(m.start(), m.end()) for m in re.finditer(re.escape(sel.substring), text)]
        if not spans:
            raise InterpError(f"substring {sel.substring!r} does not occur in the prompt {text[:80]!r}...")
        _, offsets = _offsets(tok, text, row)
        for i, (s, e) in enumerate(offsets):
            out[b, n_pad + i] = any(s < se and e > ss for ss, se in spans)
    return out


def _resolve_indices(sel: Positions, tok, input_ids, attention_mask, entity) -> Tensor:
    out = torch.zeros(input_ids.shape, dtype=torch.bool)
    for b, (n_pad, row) in enumerate(_rows(tok, input_ids, attention_mask)):
        for i in sel.indices:
            if not -len(row) <= i < len(row):
                raise InterpError(f"position {i} is out of range for a prompt of {len(row)} tokens")
            out[b, n_pad + i % len(row)] = True
    return out


def _resolve_all(sel: Positions, tok, input_ids, attention_mask, entity) -> Tensor:
    return torch.ones(input_ids.shape, dtype=torch.bool) if attention_mask is None else attention_mask.bool()


_RESOLVERS = {
    "class": _resolve_class,
    "substring": _resolve_substring,
    "indices": _resolve_indices,
    "all": _resolve_all,
    "none": lambda sel, tok, ids, mask, entity: torch.zeros(ids.shape, dtype=torch.bool),
}
