"""One intervention on a hooked model, as a context manager: `with patched(model, site, layer, source): ...`.

    with patched(student, "resid_post", 1, Replace(base_cache["blocks.1.hook_resid_post"]), positions=mask):
        logits = student.bridge(ids, attention_mask=am)       # any forward, run_with_cache or generate
    with patched(base, "resid_pre", 1, Add(direction, scale=4.0), positions=entity_mask):
        logits = base.bridge(ids, attention_mask=am)

A source is `Replace(value)` (a donor's cached activation, a mean, or `ZERO`) or `Add(vector)` (a step
along a direction). `positions` is a boolean mask over the prompt ([pos] for every row or [batch, pos]);
None patches every position. For head sites (z, q, k, v) `heads` selects heads ([head] or [batch, head]).

During generation the mask covers the prompt: a forward over a longer sequence (generation without a
cache) patches the masked prompt positions and nothing after them; a cached decoding step, whose
positions all lie after the prompt, is left alone (with `positions=None`, every step is patched).
The hook is removed when the block exits, also on error. Interventions nest with each other and with
`interp.mech.restrict.restrict_lora`; activation patching sweeps (`interp.mech.patching`) are built on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Bool
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp import InterpError
from interp.mech.hook_names import Site, has_heads, hook_name
from interp.mech.hooked import HookedModel


@dataclass(frozen=True)
class Replace:
    """Write `value` (broadcast to the activation: a donor's [batch, pos, ...] cache, a mean, zeros) there."""

    value: Tensor


@dataclass(frozen=True)
class Add:
    """Add `scale * vector` (broadcast to the activation, e.g. a [d_model] direction) there."""

    vector: Tensor
    scale: float = 1.0


ZERO = Replace(torch.zeros(()))
Source = Replace | Add


def as_bridge(model: HookedModel | TransformerBridge) -> TransformerBridge:
    """The bridge of a hooked model (or the bridge itself)."""
    if isinstance(model, HookedModel):
        return model.bridge
    if isinstance(model, TransformerBridge):
        return model
    raise InterpError(f"expected a HookedModel or TransformerBridge, got {type(model).__name__}")


def _mask(
    positions: Bool[Tensor, "... pos"] | None, heads: Bool[Tensor, "... head"] | None, act: Tensor
) -> Tensor | None:
    """The boolean mask over `act`'s (batch, pos[, head]) axes for this call, or None for 'no position'."""
    width = act.shape[1]
    if positions is None:
        pos = torch.ones(width, dtype=torch.bool, device=act.device)
    elif width < positions.shape[-1]:
        return None  # a cached decoding step: its positions come after the prompt
    else:
        pos = positions.to(act.device)
        if width > pos.shape[-1]:  # generation without a cache: the new positions are not patched
            pos = torch.nn.functional.pad(pos, (0, width - pos.shape[-1]))
    mask = pos if pos.ndim == 2 else pos.expand(act.shape[0], width)
    if heads is not None:
        h = heads.to(act.device)
        mask = mask[:, :, None] & (h if h.ndim == 2 else h.expand(act.shape[0], -1))[:, None, :]
    return mask.view(*mask.shape, *([1] * (act.ndim - mask.ndim)))


def _fit(value: Tensor, act: Tensor, prompt_width: int | None) -> Tensor:
    """`value` shaped to broadcast to `act`, or one clear error. A prompt-wide source in a longer forward
    (generation without a cache) keeps the activation after the prompt, where the mask patches nothing."""
    if prompt_width is not None and value.ndim == act.ndim and value.shape[1] == prompt_width < act.shape[1]:
        value = torch.cat([value, act[:, prompt_width:]], 1)
    try:
        torch.broadcast_shapes(value.shape, act.shape)
    except RuntimeError:
        raise InterpError(
            f"Replace value of shape {tuple(value.shape)} does not fit the activation of shape "
            f"{tuple(act.shape)} (batch, pos, ...): give the donor's activation for the same prompts, padded "
            "the same way, or a value that broadcasts (a [d_model] mean, ZERO)"
        ) from None
    return value


def _apply(act: Tensor, source: Source, mask: Tensor, prompt_width: int | None) -> Tensor:
    if isinstance(source, Add):
        return act + mask * (source.scale * source.vector.to(act.device, act.dtype))
    value = _fit(source.value.to(act.device, act.dtype), act, prompt_width)
    return torch.where(mask, value, act)


def patch_hook(
    source: Source, positions: Tensor | None = None, heads: Tensor | None = None
) -> Callable[[Tensor, object], Tensor]:
    """The TransformerLens hook function `patched` installs (for callers that manage hooks themselves)."""

    def hook(act: Tensor, hook: object = None) -> Tensor:
        mask = _mask(positions, heads, act)
        width = None if positions is None else positions.shape[-1]
        return act if mask is None else _apply(act, source, mask, width)

    return hook


@contextlib.contextmanager
def patched(
    model: HookedModel | TransformerBridge,
    site: Site,
    layer: int,
    source: Source,
    positions: Bool[Tensor, "... pos"] | None = None,
    heads: Bool[Tensor, "... head"] | None = None,
) -> Iterator[TransformerBridge]:
    """Intervene on `site` of block `layer` while the block runs; yields the bridge to call."""
    bridge = as_bridge(model)
    name = hook_name(site, layer, int(bridge.cfg.n_layers))
    if heads is not None and not has_heads(site):
        raise InterpError(f"site {site!r} has no head axis; `heads` applies to z, q, k and v")
    if not isinstance(source, Replace | Add):
        raise InterpError(f"source must be Replace(...) or Add(...), got {type(source).__name__}")
    with bridge.hooks(fwd_hooks=[(name, patch_hook(source, positions, heads))]):
        yield bridge
