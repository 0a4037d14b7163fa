"""The columns of a patching grid: which positions (and heads) each column patches in each prompt.

A column is a [batch, pos] mask over a left-padded batch: one padded position ("layer_pos", for one
prompt or prompts of one length), one token class ("layer_class"), one of claim 4's position sets
("layer_set", `SHIFT_SETS`), the k-th token of a class in every prompt that has one ("layer_aligned":
prompts of any length, pooled by what the position is, never by padded index), or every position of one
head ("layer_head").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool
from torch import Tensor

from interp import InterpError
from interp.mech.positions import (
    CLASSES,
    ENTITY,
    HEADER,
    PAD,
    SYSTEM,
    TEMPLATE,
    USER,
    LabelledBatch,
    Positions,
)


def position_columns(
    batch: LabelledBatch, positions: Sequence[int] | None = None
) -> tuple[Bool[Tensor, "col batch pos"], list[int]]:
    """One column per position of the (padded) batch: the same position in every prompt."""
    n_prompts, width = batch.input_ids.shape
    pos = list(range(width)) if positions is None else [int(p) for p in positions]
    if bad := [p for p in pos if not -width <= p < width]:
        raise InterpError(f"positions {bad} are out of range for prompts of {width} tokens")
    pos = [p % width for p in pos]
    cols = torch.zeros(len(pos), n_prompts, width, dtype=torch.bool)
    cols[torch.arange(len(pos)), :, torch.tensor(pos)] = True
    return cols, pos


def class_columns(
    batch: LabelledBatch, classes: Sequence[str] | None = None
) -> tuple[Bool[Tensor, "col batch pos"], list[str]]:
    """One column per token class: all positions of that class in each prompt."""
    present = {c for row in batch.classes for c in row}
    names = [c for c in CLASSES if c in present] if classes is None else list(classes)
    cols = torch.stack([batch.class_mask(c) for c in names])
    if empty := [n for n, col in zip(names, cols, strict=True) if not col.any()]:
        raise InterpError(f"token class(es) {empty} do not occur in these prompts")
    return cols, names


READOUT = "readout"
# Claim 4's rows: disjoint position sets that cover every prompt (the readout taken out of its class).
SHIFT_SETS: dict[str, Positions] = {
    ENTITY: Positions("class", classes=(ENTITY,), excluded=(-1,)),
    "rest of system prompt": Positions("class", classes=(SYSTEM,), excluded=(-1,)),
    "template before header": Positions("class", classes=(TEMPLATE,), excluded=(-1,)),
    "header without readout": Positions("class", classes=(HEADER,), excluded=(-1,)),
    READOUT: Positions("indices", indices=(-1,)),
    USER: Positions("class", classes=(USER,), excluded=(-1,)),
}


def shift_set_masks(batch: LabelledBatch) -> dict[str, Bool[Tensor, "batch pos"]]:
    """`SHIFT_SETS` on a left-padded batch, from its labels: the readout is each row's last position."""
    readout = torch.zeros(batch.input_ids.shape, dtype=torch.bool)
    readout[:, -1] = batch.attention_mask[:, -1].bool()
    out = {}
    for name, sel in SHIFT_SETS.items():
        out[name] = readout if name == READOUT else batch.class_mask(*sel.classes) & ~readout
    return out


def set_columns(batch: LabelledBatch) -> tuple[Bool[Tensor, "col batch pos"], list[str]]:
    """One column per `SHIFT_SETS` set present in the prompts (the entity, the rest of the system prompt,
    ..., the readout position alone), so a grid says which layers act at the readout apart from the header
    it belongs to."""
    masks = {k: m for k, m in shift_set_masks(batch).items() if m.any()}
    return torch.stack(list(masks.values())), list(masks)


def aligned_keys(batch: LabelledBatch) -> list[list[tuple[str, int] | None]]:
    """Per prompt and padded position, its (token class, index within the class in that prompt); None at pads."""
    out = []
    for row in batch.classes:
        seen: dict[str, int] = {}
        keys: list[tuple[str, int] | None] = []
        for cls in row:
            keys.append(None if cls == PAD else (cls, seen.get(cls, 0)))
            if cls != PAD:
                seen[cls] = seen.get(cls, 0) + 1
        out.append(keys)
    return out


def aligned_columns(batch: LabelledBatch) -> tuple[Bool[Tensor, "col batch pos"], list[str], list[str]]:
    """One column per (token class, index within the class): the k-th token of a class in every prompt that
    has one, wherever left padding put it. Columns follow the longest prompt's order (keys it lacks after
    it); a column is labelled by its token when the prompts agree on it, else by "<class>#<k>"."""
    keys = aligned_keys(batch)
    order = sorted(range(len(keys)), key=lambda b: -int(batch.attention_mask[b].sum()))
    names = list(dict.fromkeys(k for b in order for k in keys[b] if k is not None))
    index = {k: i for i, k in enumerate(names)}
    cols = torch.zeros(len(names), *batch.input_ids.shape, dtype=torch.bool)
    tokens: list[set[str]] = [set() for _ in names]
    for b, row in enumerate(keys):
        for p, k in enumerate(row):
            if k is not None:
                cols[index[k], b, p] = True
                tokens[index[k]].add(batch.tokens[b][p])
    labels = [next(iter(t)) if len(t) == 1 else f"{c}#{k}" for (c, k), t in zip(names, tokens, strict=True)]
    return cols, labels, [c for c, _ in names]


def head_columns(
    batch: LabelledBatch, n_heads: int
) -> tuple[Bool[Tensor, "col batch pos"], Bool[Tensor, "col head"]]:
    """One column per attention head: that head's output at every real position."""
    cols = batch.attention_mask.bool()[None].repeat(n_heads, 1, 1)
    return cols, torch.eye(n_heads, dtype=torch.bool)


def grid_columns(
    batch: LabelledBatch, kind: str, n_heads: int, select: Sequence | None = None
) -> tuple[Tensor, Tensor | None, list[str], list[str] | None, dict]:
    """A grid's columns (and head masks), their labels and token classes, and its config, by `kind`:
    "layer_pos" (`select` = padded positions: for one prompt, or prompts of one length), "layer_aligned"
    (positions aligned by token class over prompts of any length), "layer_class" (`select` = classes) or
    "layer_head"."""
    n = {"n_prompts": int(batch.input_ids.shape[0])}
    if kind == "layer_pos":
        cols, pos = position_columns(batch, select)
        labels, classes = [batch.tokens[0][p] for p in pos], [batch.classes[0][p] for p in pos]
        return cols, None, labels, classes, {"positions": pos, **n}
    if kind == "layer_aligned":
        cols, labels, classes = aligned_columns(batch)
        return cols, None, labels, classes, {**n, "aligned": "token class and index within the class"}
    if kind == "layer_class":
        cols, names = class_columns(batch, select)
        return cols, None, names, names, n
    if kind == "layer_set":
        cols, names = set_columns(batch)
        return cols, None, names, names, {**n, "sets": "claim 4's disjoint position sets (the readout alone)"}
    if kind == "layer_head":
        cols, heads = head_columns(batch, n_heads)
        return cols, heads, [f"H{h}" for h in range(n_heads)], None, n
    raise InterpError(f"unknown grid kind {kind!r}")
