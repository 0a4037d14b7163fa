"""Why LoRA transfers: the student's activation shift against the teacher's persona direction.

Subliminal transfer has been described as distilling a steering vector (Blank et al., arXiv 2606.00995):
the student learns an activation shift that mimics what the persona does in context. Measured here, per
layer (the residual stream after each block) and token class:

* **persona direction** - mean activation on number prompts under the teacher's persona prompt minus
  under the default prompt. The persona prompt names no entity, so for the entity class the direction is
  the persona's system-prompt mean minus the default's entity mean (what stands in the entity's place);
* **student shift** - student minus base activation under the default prompt, position by position on the
  same prompts, averaged over the positions of each class;
* their **cosine** and the shift's **projection** on the unit direction;
* **steering** - the base model with a vector added to its residual stream at the positions of chosen
  classes (e.g. the student's mean entity shift), to ask how much of the student's lift it recovers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp import InterpError
from interp.mech.positions import ENTITY, HEADER, SYSTEM, TEMPLATE, USER, LabelledBatch, encode_prompts

ALIGN_CLASSES = (ENTITY, SYSTEM, TEMPLATE, USER, HEADER)
COUNTERPART = {ENTITY: SYSTEM}  # class of the persona prompt that stands where the default has this one
SHARED_CLASSES = (ENTITY, TEMPLATE, HEADER)  # tokens the training and evaluation contexts share


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    return model.get_decoder().layers


@contextlib.contextmanager
def residual_hooks(model: PreTrainedModel, fn) -> Iterator[None]:
    """Call `fn(layer, hidden)` on the residual stream after every block (it may edit `hidden` in place);
    the hooks are removed on exit."""
    handles = []

    def make(layer: int):
        def hook(_module, _inputs, output):
            fn(layer, output[0] if isinstance(output, tuple) else output)

        return hook

    try:
        for i, block in enumerate(decoder_layers(model)):
            handles.append(block.register_forward_hook(make(i)))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def residuals(model: PreTrainedModel, batch: LabelledBatch) -> Float[Tensor, "layer batch pos d"]:
    """The residual stream after each block at every position of a left-padded batch."""
    out: list[Tensor] = [None] * len(decoder_layers(model))  # type: ignore[list-item]

    def keep(layer: int, hidden: Tensor) -> None:
        out[layer] = hidden.detach().float().clone()

    with residual_hooks(model, keep):
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    return torch.stack(out)


def class_mean(
    acts: Float[Tensor, "layer batch pos d"], batch: LabelledBatch, cls: str
) -> Float[Tensor, "layer d"]:
    """Mean over every position of class `cls` in the batch (an error if the class never occurs)."""
    mask = batch.class_mask(cls)
    if not mask.any():
        raise InterpError(f"no '{cls}' positions in these prompts")
    return acts[:, mask].mean(1)


def class_means(acts: Tensor, batch: LabelledBatch, classes: Sequence[str]) -> dict[str, Tensor]:
    return {c: class_mean(acts, batch, c) for c in classes if batch.class_mask(c).any()}


def persona_direction(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    persona_prompts: list[str],
    default_prompts: list[str],
    entity: str | None,
) -> dict[str, Float[Tensor, "layer d"]]:
    """Per class: mean residual under the persona minus under the default prompt (rendered prompts)."""
    persona = encode_prompts(tok, persona_prompts, entity)
    default = encode_prompts(tok, default_prompts, entity)
    m_p = class_means(residuals(model, persona), persona, ALIGN_CLASSES)
    m_d = class_means(residuals(model, default), default, ALIGN_CLASSES)
    return {c: m_p[COUNTERPART.get(c, c)] - m_d[c] for c in m_d if COUNTERPART.get(c, c) in m_p}


def position_shift(
    student: PreTrainedModel, base: PreTrainedModel, batch: LabelledBatch
) -> Float[Tensor, "layer batch pos d"]:
    """Student minus base residual after each block, position by position."""
    return residuals(student, batch) - residuals(base, batch)


def student_shift(
    student: PreTrainedModel, base: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str], entity
) -> dict[str, Float[Tensor, "layer d"]]:
    """Per class: the student's mean shift from the base under the prompts' (default) system prompt."""
    batch = encode_prompts(tok, prompts, entity)
    return class_means(position_shift(student, base, batch), batch, ALIGN_CLASSES)


@dataclass(frozen=True)
class Alignment:
    """One student's shift against the persona direction at one layer and token class."""

    student: str
    rank: int | str  # LoRA rank, or "full"
    seed: int
    layer: int
    token_class: str
    cosine: float
    projection: float  # shift . direction / |direction|
    shift_norm: float
    direction_norm: float


def align(
    direction: dict[str, Tensor], shift: dict[str, Tensor], student: str, rank: int | str, seed: int
) -> list[Alignment]:
    """Cosine and projection of the shift on the direction, for every layer and class both have."""
    rows = []
    for c in ALIGN_CLASSES:
        if c not in direction or c not in shift:
            continue
        for layer, (d, s) in enumerate(zip(direction[c], shift[c], strict=True)):
            dn, sn = float(d.norm()), float(s.norm())
            cos = float(d @ s) / (dn * sn) if dn > 0 and sn > 0 else 0.0
            proj = float(d @ s) / dn if dn > 0 else 0.0
            rows.append(Alignment(student, rank, seed, layer, c, cos, proj, sn, dn))
    return rows


def shared_cosine(direction: dict[str, Tensor], shift: dict[str, Tensor]) -> float:
    """The shift's cosine with the persona direction, averaged over the shared token classes (entity,
    template, header: those the training and evaluation contexts share) and every layer."""
    rows = align(direction, shift, "", 0, 0)
    cosines = [r.cosine for r in rows if r.token_class in SHARED_CLASSES]
    return float(sum(cosines) / len(cosines)) if cosines else 0.0


@contextlib.contextmanager
def steered(
    model: PreTrainedModel, layer: int, mask: Bool[Tensor, "batch pos"], vector: Tensor
) -> Iterator[None]:
    """Add `vector` to the residual stream after block `layer` at the positions where `mask` is True (a
    mask of the batch the model is about to run). `vector` is one [d] vector or one per position
    [batch, pos, d]. The hook is removed on exit."""

    def add(i: int, hidden: Tensor) -> None:
        if i != layer:
            return
        if tuple(hidden.shape[:2]) != tuple(mask.shape):
            raise InterpError(
                f"steering mask {tuple(mask.shape)} does not fit the batch {tuple(hidden.shape[:2])}"
            )
        hidden[mask] += (vector if vector.dim() == 1 else vector[mask]).to(hidden.dtype)

    with residual_hooks(model, add):
        yield


@torch.no_grad()
def next_token_probs(model: PreTrainedModel, batch: LabelledBatch) -> Float[Tensor, "batch vocab"]:
    return (
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        .logits[:, -1]
        .float()
        .softmax(-1)
    )


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation (None with fewer than 3 points or no spread)."""
    if len(x) < 3:
        return None
    a, b = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else None
