"""Patched runs that resume from the recipient's own run instead of starting from the embeddings.

A patch at layer L and positions >= p leaves every block below L, and every position before p, exactly as
in the recipient's run (attention is causal). `recipient_run` records the recipient's residual stream,
block arguments and keys/values once; `resume_chunk` then runs a group of cells of one layer from block
L over positions p.. only, attending to the cached keys/values before p (`PrefixKV`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens.model_bridge import TransformerBridge

from interp import InterpError
from interp.mech.grid import Metric, PatchGrid, first_patched, grid_patches, partition
from interp.mech.hook_names import Site
from interp.mech.positions import LabelledBatch

# Keyword arguments a decoder block receives, by the axis (from the end) that runs over query positions; a
# resumed run slices them to its positions. Any other tensor argument makes a model unsupported.
POSITION_KWARGS: dict[str, int] = {
    "attention_mask": -2,  # (batch, 1, query, key): keys keep every position
    "position_embeddings": -2,  # (cos, sin), each (batch, pos, d_rotary)
    "position_ids": -1,
    "cache_position": -1,
}
# HF's own cache arguments are dropped: the earlier positions' keys/values come from `PrefixKV`.
CACHE_KWARGS = ("cache", "past_key_values", "use_cache")
# The argument under which TransformerLens's attention bridge takes a key/value cache on transformers 5
# (the decoder layer renames `past_key_values` to `cache`, which the bridge does not read).
KV_KWARG = "layer_past"
# Sites patched before the final block's MLP: a chunk patching one of them in the final block may still
# run that MLP at the last position only.
MLP_SAFE_SITES = ("resid_pre", "attn_out")
# Packages whose torch hooks a resumed run knows to be harmless (hook points, capture of outputs).
OWN_HOOK_MODULES = ("transformer_lens.", "transformers.")


class PrefixKV:
    """Keys/values of the positions before a resumed run's first one, by layer (the attention bridge's cache).

    The attention bridge calls `update` with the new positions' keys and values (after RoPE) and attends
    over what it returns. Every call is recorded in `seen`, so a recording run (no prefix) captures the
    recipient's keys/values and a resumed run can check that every block used its prefix.
    """

    def __init__(self, prefix: dict[int, tuple[Tensor, Tensor]] | None = None) -> None:
        self.prefix = {} if prefix is None else prefix
        self.seen: dict[int, tuple[Tensor, Tensor]] = {}

    def update(self, keys: Tensor, values: Tensor, layer_idx: int, *args: Any, **kwargs: Any) -> tuple:
        self.seen[layer_idx] = (keys, values)
        if layer_idx not in self.prefix:
            return keys, values
        prefix_keys, prefix_values = self.prefix[layer_idx]  # (row, kv_head, pos, d_head)
        return torch.cat([prefix_keys, keys], -2), torch.cat([prefix_values, values], -2)


@dataclass(frozen=True)
class RecipientRun:
    """What a resumed patched run reuses from the recipient's own forward pass, per layer."""

    resid_pre: list[Float[Tensor, "batch pos d_model"]]
    block_kwargs: list[dict[str, Any]]
    keys: list[Float[Tensor, "batch kv_head pos d_head"]]
    values: list[Float[Tensor, "batch kv_head pos d_head"]]
    logits: Float[Tensor, "batch pos vocab"]
    final_mlp_last_only: bool = False
    """Whether the last block can run its MLP at the last position only (checked on this run)."""


def _foreign_hooks(bridge: TransformerBridge) -> bool:
    """Whether the bridge carries hooks a resumed run could break: any hook left on a hook point, or a torch
    hook from outside TransformerLens and transformers' output capture (e.g. a position-gated LoRA). Such
    hooks may index positions of the whole sequence."""
    for module in bridge.modules():
        hooks = (*module._forward_hooks.values(), *module._forward_pre_hooks.values())
        if hooks and isinstance(module, HookPoint):
            return True
        if any(not getattr(fn, "__module__", "").startswith(OWN_HOOK_MODULES) for fn in hooks):
            return True
    return False


@contextlib.contextmanager
def _capturing_blocks(
    bridge: TransformerBridge, kv: PrefixKV, inputs: dict[int, tuple], outputs: dict[int, Tensor]
) -> Iterator[None]:
    """Record each block's (input, keyword arguments) and output, and hand its attention `kv` as cache."""

    def capture_in(layer: int, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        inputs[layer] = (args[0] if args else None, dict(kwargs))
        return args, {**kwargs, KV_KWARG: kv}

    def capture_out(layer: int, out: Any) -> None:
        outputs[layer] = out[0] if isinstance(out, tuple) else out

    handles = [
        handle
        for layer, block in enumerate(bridge.blocks)
        for handle in (
            block.register_forward_pre_hook(lambda _b, a, k, i=layer: capture_in(i, a, k), with_kwargs=True),
            block.register_forward_hook(lambda _b, _a, out, i=layer: capture_out(i, out)),
        )
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _mlp_at_last_position(block: Any) -> Iterator[None]:
    """Run `block`'s MLP on the last position only. The MLP is position-wise and the residual add
    broadcasts, so the block's output is exact at the last position (and not meaningful before it): for
    the final block of a run whose metric reads the last position's logits only."""
    handle = block.mlp.register_forward_pre_hook(lambda _m, args: (args[0][:, -1:], *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def _run_block(block: Any, hidden: Tensor, kwargs: dict, kv: PrefixKV, last_only_mlp: bool = False) -> Tensor:
    """A block's output hidden states (its MLP at the last position only when `last_only_mlp`)."""
    with _mlp_at_last_position(block) if last_only_mlp else contextlib.nullcontext():
        out = block(hidden, **kwargs, **{KV_KWARG: kv})
    return out[0] if isinstance(out, tuple) else out


def _final_mlp_check(bridge: TransformerBridge, resid_pre: Tensor, kwargs: dict, output: Tensor) -> bool:
    """Whether the last block, its MLP run at the last position only, reproduces its output there."""
    if not isinstance(getattr(bridge.blocks[-1], "mlp", None), torch.nn.Module):
        return False
    try:
        out = _run_block(bridge.blocks[-1], resid_pre, kwargs, PrefixKV(), last_only_mlp=True)
    except (RuntimeError, ValueError, IndexError):  # an MLP or block that does not take one position
        return False
    return out.shape == output.shape and torch.allclose(out[:, -1], output[:, -1], rtol=1e-5, atol=1e-6)


def _head(bridge: TransformerBridge, hidden: Tensor) -> Tensor:
    """Logits from the last block's output: final norm, then unembedding."""
    return bridge.unembed(bridge.ln_final(hidden))


@torch.no_grad()
def recipient_run(bridge: TransformerBridge, batch: LabelledBatch) -> RecipientRun | None:
    """The recipient's run with what resumed runs need, or None when this model cannot be resumed midway.

    Resuming needs a stack of blocks whose only position-dependent arguments are in `POSITION_KWARGS`, an
    attention that takes `PrefixKV`, no foreign hooks, and logits that are the final norm and unembedding
    of the last block's output; each is checked here on the recipient's own run.
    """
    if _foreign_hooks(bridge) or not hasattr(bridge, "blocks"):
        return None
    device, layers = bridge.cfg.device, list(range(int(bridge.cfg.n_layers)))
    kv, inputs, outputs = PrefixKV(), {}, {}
    with _capturing_blocks(bridge, kv, inputs, outputs):
        logits = bridge(batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
    if sorted(inputs) != layers or sorted(kv.seen) != layers or sorted(outputs) != layers:
        return None
    resid_pre = [inputs[layer][0] for layer in layers]
    kwargs = [{k: v for k, v in inputs[layer][1].items() if k not in CACHE_KWARGS} for layer in layers]
    tensors = {k for kw in kwargs for k, v in kw.items() if isinstance(v, Tensor | tuple)}
    if any(x is None for x in resid_pre) or not tensors <= set(POSITION_KWARGS):
        return None
    # a loose check (rounding of the dtype): it catches a logit transform the head above would miss
    head, last, tol = (
        _head(bridge, outputs[layers[-1]][:, -1:]),
        logits[:, -1:],
        torch.finfo(logits.dtype).eps,
    )
    if head.shape != last.shape or not torch.allclose(head, last, rtol=tol**0.5, atol=tol**0.5):
        return None
    keys, values = zip(*(kv.seen[layer] for layer in layers), strict=True)
    final = _final_mlp_check(bridge, resid_pre[-1], kwargs[-1], outputs[layers[-1]])
    return RecipientRun(resid_pre, kwargs, list(keys), list(values), logits, final_mlp_last_only=final)


def _resumed_kwargs(kwargs: dict[str, Any], start: int, n_prompts: int, n_cells: int) -> dict[str, Any]:
    """A block's keyword arguments for positions `start..` of `n_cells` copies of the prompts."""

    def cut(name: str, x: Any) -> Any:
        if isinstance(x, tuple):
            return tuple(cut(name, t) for t in x)
        if not isinstance(x, Tensor) or name not in POSITION_KWARGS:
            return x
        x = x.narrow(POSITION_KWARGS[name], start, x.shape[POSITION_KWARGS[name]] - start)
        # rows follow the cell-major order of `grid_patches`; a leading 1 broadcasts over them
        return x.repeat(n_cells, *([1] * (x.ndim - 1))) if x.ndim > 1 and x.shape[0] == n_prompts > 1 else x

    return {name: cut(name, x) for name, x in kwargs.items()}


def resume_chunk(
    bridge: TransformerBridge,
    run: RecipientRun,
    donor_acts: dict[int, Tensor],
    site: Site,
    grid: PatchGrid,
    start: int,
    metric: Metric,
) -> Float[Tensor, "cell batch"]:
    """The metric with `grid` (all of one layer L, none patching before `start`) patched, computed from
    block L on over positions `start..` only; the rest is the recipient's, unchanged by these patches."""
    layer, n_layers = int(grid.layer[0]), len(run.resid_pre)
    n_cells, n_prompts = len(grid), run.logits.shape[0]
    kv = PrefixKV(
        {
            i: (
                run.keys[i][:, :, :start].repeat(n_cells, 1, 1, 1),
                run.values[i][:, :, :start].repeat(n_cells, 1, 1, 1),
            )
            for i in range(layer, n_layers)
        }
    )
    hidden = run.resid_pre[layer][:, start:].repeat(n_cells, 1, 1)  # (row, pos - start, d_model)
    last_only = getattr(metric, "last_position_only", False)
    # the final block's MLP only at the last position, unless this chunk patches at or after it
    mlp_last = last_only and run.final_mlp_last_only and (layer < n_layers - 1 or site in MLP_SAFE_SITES)
    with grid_patches(bridge, site, donor_acts, grid, start):
        for i in range(layer, n_layers):
            kwargs = _resumed_kwargs(run.block_kwargs[i], start, n_prompts, n_cells)
            hidden = _run_block(bridge.blocks[i], hidden, kwargs, kv, mlp_last and i == n_layers - 1)
        logits = _head(bridge, hidden[:, -1:] if last_only else hidden)
    if sorted(kv.seen) != list(range(layer, n_layers)):
        raise InterpError("a resumed patched run did not reuse the cached keys/values; pass reuse=False")
    if not last_only:  # earlier positions are the recipient's (at padding, outputs are not compared)
        logits = torch.cat([run.logits[:, :start].repeat(n_cells, 1, 1), logits], 1)
    return metric(logits).view(n_cells, n_prompts)


def resumed_grid(
    bridge: TransformerBridge,
    run: RecipientRun,
    donor_acts: dict[int, Tensor],
    site: Site,
    grid: PatchGrid,
    metric: Metric,
    max_rows: int,
) -> Float[Tensor, "cell batch"]:
    """Every cell by resumed runs: cells grouped by layer, then by earliest patched position."""
    n_prompts, width = run.logits.shape[:2]
    starts = first_patched(grid)
    order, parts = [], []
    for layer in grid.layer.unique().tolist():
        idx = sorted((i for i in range(len(grid)) if int(grid.layer[i]) == layer), key=lambda i: starts[i])
        for i, j in partition([starts[c] for c in idx], width, n_prompts, max(1, max_rows // n_prompts)):
            chunk = torch.tensor(idx[i:j])
            parts.append(resume_chunk(bridge, run, donor_acts, site, grid[chunk], starts[idx[i]], metric))
            order.append(chunk)
    values = torch.cat(parts)
    out = torch.empty_like(values)
    out[torch.cat(order).to(values.device)] = values  # back to the grid's order
    return out
