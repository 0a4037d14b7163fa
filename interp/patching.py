"""Batched activation patching between two hooked models on the same prompts (donor -> recipient).

Student -> base is denoising (how much of the trait a patch restores), base -> student is noising. The
metric is the trait's log-probability as the first answer token (or its log-prob difference to a
reference answer) at the answer position, averaged over prompts and normalised so 0 = recipient and
1 = donor.

Unlike `transformer_lens.patching`, which runs one forward pass and one `.item()` per patched cell, a
sweep here stacks many cells along the batch axis: the recipient's prompts are repeated once per cell
and a single hook per layer swaps in the donor's activation wherever that cell's mask is set. Metrics
stay on the device until the end of the sweep.

Patched runs also skip what a patch cannot change. A patch at layer L and positions >= p leaves every
block below L, and every position before p, exactly as in the recipient's own run (attention is causal).
So by default (`reuse=True`) each batch of cells of one layer starts at block L from the recipient's
cached residual stream, runs only the positions from its earliest patched one, and attends to the
recipient's cached keys/values for the positions before. Cells are grouped so that this saving outweighs
the cost of another, smaller forward pass. `reuse=False` runs every patched pass from the embeddings.

A cell is (layer, position mask over batch x pos, optional head mask), which covers:
  layer x position  (one column of the prompt batch),
  layer x token class (every position of a class in each prompt at once),
  layer x head      (one head's output z at every position).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerBase

from interp import InterpError
from interp.hook_names import SITES, Site, check_layers, check_site, hook_name
from interp.hooked import HookedModel
from interp.positions import CLASSES, LabelledBatch
from interp.results import LocalizationResult, normalise

Metric = Callable[[Float[Tensor, "batch pos vocab"]], Float[Tensor, " batch"]]
Model = HookedModel | TransformerBridge


@dataclass(frozen=True)
class TraitMetric:
    """Log-probability of the trait's first token(s) at the last position, minus a reference's if given."""

    target_ids: tuple[int, ...]
    reference_ids: tuple[int, ...] = ()
    name: str = "trait log-prob"
    last_position_only: ClassVar[bool] = True
    """The metric reads only the last position's logits (a resumed patched run computes only those)."""

    def __call__(self, logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, " batch"]:
        logp = logits[:, -1].float().log_softmax(-1)  # (batch, vocab): left padding puts the answer last
        value = logp[:, list(self.target_ids)].logsumexp(-1)
        if self.reference_ids:
            value = value - logp[:, list(self.reference_ids)].logsumexp(-1)
        return value


def trait_metric(tok: PreTrainedTokenizerBase, trait: str, reference: str | None = None) -> TraitMetric:
    """The trait metric with the evaluator's first tokens ("owl", "Owl"); logit diff when `reference` is set."""
    from interp.evaluation import trait_token_ids

    target, _ = trait_token_ids(tok, trait)
    if reference is None:
        return TraitMetric(tuple(target), (), f"log p({trait})")
    ref, _ = trait_token_ids(tok, reference)
    if set(ref) & set(target):
        raise InterpError(f"trait {trait!r} and reference {reference!r} share a first token; pick another")
    return TraitMetric(tuple(target), tuple(ref), f"log p({trait}) - log p({reference})")


def as_bridge(model: Model) -> TransformerBridge:
    """The bridge of a hooked model, checked to be in eval mode (patching needs deterministic runs)."""
    bridge = model.bridge if isinstance(model, HookedModel) else model
    if not isinstance(bridge, TransformerBridge):
        raise InterpError(f"expected a HookedModel or TransformerBridge, got {type(model).__name__}")
    if bridge.training:
        raise InterpError("activation patching needs the model in eval mode: call .eval() first")
    return bridge


@torch.no_grad()
def run_metric(model: Model, batch: LabelledBatch, metric: Metric) -> Float[Tensor, " batch"]:
    """The metric of an unpatched run, per prompt."""
    bridge = as_bridge(model)
    device = bridge.cfg.device
    return metric(bridge(batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)))


@torch.no_grad()
def donor_activations(
    donor: Model, batch: LabelledBatch, site: Site, layers: Sequence[int], metric: Metric | None = None
) -> tuple[dict[int, Tensor], Float[Tensor, " batch"] | None]:
    """The donor's activations at `site` for each of `layers` (the patch sources), and its metric."""
    bridge = as_bridge(donor)
    names = {hook_name(layer, site, bridge.cfg.n_layers): layer for layer in layers}
    device = bridge.cfg.device
    logits, cache = bridge.run_with_cache(
        batch.input_ids.to(device), names_filter=list(names), attention_mask=batch.attention_mask.to(device)
    )
    return {layer: cache[name] for name, layer in names.items()}, None if metric is None else metric(logits)


@dataclass(frozen=True)
class Cells:
    """Patched cells: cell i patches `pos[i]` (and, for head sites, heads `head[i]`) in layer `layer[i]`."""

    layer: Int[Tensor, " cell"]
    pos: Bool[Tensor, "cell batch pos"]
    head: Bool[Tensor, "cell head"] | None = None

    def __len__(self) -> int:
        return int(self.layer.shape[0])

    def __getitem__(self, s: slice) -> Cells:
        return Cells(self.layer[s], self.pos[s], None if self.head is None else self.head[s])


def _patch_hook(
    donor: Tensor, cells: Cells, layer: int, start: int = 0
) -> Callable[[Tensor, object], Tensor]:
    """A hook that swaps in the donor's activation at every (row, position[, head]) a cell of `layer` patches.

    With `start` > 0 the hooked run covers only positions `start..` (a resumed run, see `resume_chunk`).
    """
    n_cells, batch, width = cells.pos.shape
    layer_cells = (cells.layer == layer)[:, None, None]
    mask = (cells.pos & layer_cells)[:, :, start:].reshape(n_cells * batch, width - start)  # (row, pos)
    if cells.head is not None:
        mask = mask[:, :, None] & cells.head.repeat_interleave(batch, 0)[:, None, :]  # (row, pos, head)
    # (row, pos, ...): row = cell * batch + b
    source = donor[:, start:].repeat(n_cells, *([1] * (donor.ndim - 1)))

    def hook(act: Tensor, hook: object = None) -> Tensor:
        m = mask.to(act.device).view(*mask.shape, *([1] * (act.ndim - mask.ndim)))
        return torch.where(m, source.to(act.dtype), act)

    return hook


def _patched_chunk(
    bridge: TransformerBridge,
    donor_acts: dict[int, Tensor],
    batch: LabelledBatch,
    site: Site,
    cells: Cells,
    metric: Metric,
) -> Float[Tensor, "cell batch"]:
    """The metric of full forward passes (from the embeddings) with `cells` patched, one row per cell x prompt."""
    n_cells, n_prompts = len(cells), batch.input_ids.shape[0]
    device = bridge.cfg.device
    ids = batch.input_ids.repeat(n_cells, 1).to(device)
    mask = batch.attention_mask.repeat(n_cells, 1).to(device)
    hooks = [
        (hook_name(layer, site), _patch_hook(donor_acts[layer], cells, layer))
        for layer in cells.layer.unique().tolist()
    ]
    logits = bridge.run_with_hooks(ids, fwd_hooks=hooks, attention_mask=mask)
    return metric(logits).view(n_cells, n_prompts)


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
# A forward pass costs about this many extra token-blocks of work on top of its tokens (the bridge's
# per-call overhead, measured on the organism on CPU); it decides how cells are grouped into passes.
PASS_OVERHEAD_TOKENS = 128
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
    return RecipientRun(resid_pre, kwargs, list(keys), list(values), logits)


def _resumed_kwargs(kwargs: dict[str, Any], start: int, n_prompts: int, n_cells: int) -> dict[str, Any]:
    """A block's keyword arguments for positions `start..` of `n_cells` copies of the prompts."""

    def cut(name: str, x: Any) -> Any:
        if isinstance(x, tuple):
            return tuple(cut(name, t) for t in x)
        if not isinstance(x, Tensor) or name not in POSITION_KWARGS:
            return x
        x = x.narrow(POSITION_KWARGS[name], start, x.shape[POSITION_KWARGS[name]] - start)
        # rows follow the cell-major order of `_patch_hook`; a leading 1 broadcasts over them
        return x.repeat(n_cells, *([1] * (x.ndim - 1))) if x.ndim > 1 and x.shape[0] == n_prompts > 1 else x

    return {name: cut(name, x) for name, x in kwargs.items()}


def resume_chunk(
    bridge: TransformerBridge,
    run: RecipientRun,
    donor_acts: dict[int, Tensor],
    site: Site,
    cells: Cells,
    start: int,
    metric: Metric,
) -> Float[Tensor, "cell batch"]:
    """The metric with `cells` (all of one layer L, none patching before `start`) patched, computed from
    block L on over positions `start..` only; the rest is the recipient's, unchanged by these patches."""
    layer, n_layers = int(cells.layer[0]), len(run.resid_pre)
    n_cells, n_prompts = len(cells), run.logits.shape[0]
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
    hooks = [(hook_name(layer, site), _patch_hook(donor_acts[layer], cells, layer, start))]
    with bridge.hooks(fwd_hooks=hooks):
        for i in range(layer, n_layers):
            kwargs = _resumed_kwargs(run.block_kwargs[i], start, n_prompts, n_cells)
            out = bridge.blocks[i](hidden, **kwargs, **{KV_KWARG: kv})
            hidden = out[0] if isinstance(out, tuple) else out
        logits = _head(bridge, hidden[:, -1:] if last_only else hidden)
    if sorted(kv.seen) != list(range(layer, n_layers)):
        raise InterpError("a resumed patched run did not reuse the cached keys/values; pass reuse=False")
    if not last_only:  # earlier positions are the recipient's (at padding, outputs are not compared)
        logits = torch.cat([run.logits[:, :start].repeat(n_cells, 1, 1), logits], 1)
    return metric(logits).view(n_cells, n_prompts)


def _first_patched(cells: Cells) -> list[int]:
    """Per cell, the earliest position it patches in any prompt (the last position if it patches none)."""
    width = cells.pos.shape[-1]
    any_row = cells.pos.any(1)  # (cell, pos)
    first = torch.where(any_row.any(1), any_row.float().argmax(1), torch.tensor(width - 1))
    return first.tolist()


def _partition(starts: list[int], width: int, rows_per_cell: int, max_cells: int) -> list[tuple[int, int]]:
    """Split cells sorted by start into consecutive [i, j) groups run as one pass each, minimising the
    tokens computed (each pass runs from its first start) plus a per-pass overhead."""
    best, cut = [0.0] + [math.inf] * len(starts), [0] * (len(starts) + 1)
    for j in range(1, len(starts) + 1):
        for i in range(max(0, j - max_cells), j):
            cost = best[i] + PASS_OVERHEAD_TOKENS + (j - i) * rows_per_cell * (width - starts[i])
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(starts)
    while j > 0:
        groups.append((cut[j], j))
        j = cut[j]
    return groups[::-1]


def _resumed_cells(
    bridge: TransformerBridge,
    run: RecipientRun,
    donor_acts: dict[int, Tensor],
    site: Site,
    cells: Cells,
    metric: Metric,
    max_rows: int,
) -> Float[Tensor, "cell batch"]:
    """Every cell by resumed runs: cells grouped by layer, then by earliest patched position."""
    n_prompts, width = run.logits.shape[:2]
    starts = _first_patched(cells)
    order, parts = [], []
    for layer in cells.layer.unique().tolist():
        idx = sorted((i for i in range(len(cells)) if int(cells.layer[i]) == layer), key=lambda i: starts[i])
        for i, j in _partition([starts[c] for c in idx], width, n_prompts, max(1, max_rows // n_prompts)):
            chunk = torch.tensor(idx[i:j])
            sub = Cells(
                cells.layer[chunk], cells.pos[chunk], None if cells.head is None else cells.head[chunk]
            )
            parts.append(resume_chunk(bridge, run, donor_acts, site, sub, starts[idx[i]], metric))
            order.append(chunk)
    values = torch.cat(parts)
    out = torch.empty_like(values)
    out[torch.cat(order).to(values.device)] = values  # back to the cells' order
    return out


def _has_position_axis(site: Site) -> bool:
    """Whether activations at `site` have the position axis right after the batch axis."""
    return SITES[check_site(site)][1].startswith("pos")


@torch.no_grad()
def patch_cells(
    recipient: Model,
    donor_acts: dict[int, Tensor],
    batch: LabelledBatch,
    site: Site,
    cells: Cells,
    metric: Metric,
    max_rows: int = 256,
    reuse: bool = True,
) -> Float[Tensor, "cell batch"]:
    """The metric of the recipient with each cell patched from `donor_acts`, many cells per forward pass.

    `reuse` resumes each patched run from the recipient's own run where the patch starts (same results,
    less work); models or sites where that is not possible fall back to full forward passes. A metric
    without `last_position_only` then gets the recipient's logits before the earliest patched position
    (the same at real tokens; at left padding, which no metric should read, they may differ).
    """
    bridge = as_bridge(recipient)
    run = recipient_run(bridge, batch) if reuse and _has_position_axis(site) else None
    if run is not None:
        return _resumed_cells(bridge, run, donor_acts, site, cells, metric, max_rows).cpu()
    per_pass = max(1, max_rows // batch.input_ids.shape[0])
    out = [
        _patched_chunk(bridge, donor_acts, batch, site, cells[i : i + per_pass], metric)
        for i in range(0, len(cells), per_pass)
    ]
    return torch.cat(out).cpu()  # the sweep's only device -> host transfer


def _check_pair(
    recipient: Model, donor: Model, batch: LabelledBatch, donor_batch: LabelledBatch | None
) -> LabelledBatch:
    r, d = as_bridge(recipient), as_bridge(donor)
    if (r.cfg.n_layers, r.cfg.d_model, r.cfg.n_heads) != (d.cfg.n_layers, d.cfg.d_model, d.cfg.n_heads):
        raise InterpError("donor and recipient have different architectures: patching needs matching shapes")
    donor_batch = batch if donor_batch is None else donor_batch
    if donor_batch.input_ids.shape != batch.input_ids.shape:
        raise InterpError(
            f"donor prompts {tuple(donor_batch.input_ids.shape)} and recipient prompts "
            f"{tuple(batch.input_ids.shape)} must have the same shape (same number of tokens)"
        )
    return donor_batch


def _sweep(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    donor_batch: LabelledBatch | None,
    metric: Metric,
    site: Site,
    layers: Sequence[int] | None,
    cols: Bool[Tensor, "col batch pos"],
    heads: Bool[Tensor, "col head"] | None,
    max_rows: int,
    reuse: bool = True,
) -> tuple[list[int], Float[Tensor, "layer col"], float, float]:
    """Exact patching of every (layer, column) cell; returns layers, raw metric grid, recipient, donor."""
    donor_batch = _check_pair(recipient, donor, batch, donor_batch)
    layer_list = check_layers(layers, as_bridge(recipient).cfg.n_layers)
    n_cols = cols.shape[0]
    cells = Cells(
        layer=torch.tensor(layer_list).repeat_interleave(n_cols),
        pos=cols.repeat(len(layer_list), 1, 1),
        head=None if heads is None else heads.repeat(len(layer_list), 1),
    )
    acts, donor_metric = donor_activations(donor, donor_batch, site, layer_list, metric)
    # One extra cell that patches nothing gives the recipient's own metric in the same forward pass.
    baseline = Cells(
        torch.tensor(layer_list[:1]),
        torch.zeros_like(cells.pos[:1]),
        None if heads is None else torch.zeros_like(cells.head[:1]),
    )
    both = Cells(
        torch.cat([cells.layer, baseline.layer]),
        torch.cat([cells.pos, baseline.pos]),
        None if heads is None else torch.cat([cells.head, baseline.head]),
    )
    out = patch_cells(recipient, acts, batch, site, both, metric, max_rows, reuse).mean(1)
    raw = out[:-1].view(len(layer_list), n_cols)
    return layer_list, raw, float(out[-1]), float(donor_metric.mean())


def _metric_name(metric: Metric) -> str:
    return getattr(metric, "name", getattr(metric, "__name__", "metric"))


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


def head_columns(
    batch: LabelledBatch, n_heads: int
) -> tuple[Bool[Tensor, "col batch pos"], Bool[Tensor, "col head"]]:
    """One column per attention head: that head's output at every real position."""
    cols = batch.attention_mask.bool()[None].repeat(n_heads, 1, 1)
    return cols, torch.eye(n_heads, dtype=torch.bool)


def grid_result(
    sweep: tuple[list[int], Tensor, float, float],
    kind: str,
    site: str,
    metric: Metric,
    labels: list[str],
    classes: list[str] | None,
    config: dict,
    method: str = "exact",
) -> LocalizationResult:
    """Wrap a sweep's (layers, raw metric, recipient metric, donor metric) as a labelled result."""
    layer_list, raw, rec, don = sweep
    return LocalizationResult(
        scores=normalise(raw, rec, don),
        raw=raw,
        kind=kind,
        site=site,
        metric=_metric_name(metric),
        layers=layer_list,
        col_labels=labels,
        col_classes=classes,
        recipient_metric=rec,
        donor_metric=don,
        method=method,
        config=config,
    )


def patch_layer_pos(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    site: Site = "resid_pre",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    donor_batch: LabelledBatch | None = None,
    max_rows: int = 256,
    reuse: bool = True,
) -> LocalizationResult:
    """Patch `site` at each (layer, position) from donor into recipient; columns labelled by prompt 0's tokens."""
    cols, pos = position_columns(batch, positions)
    return grid_result(
        _sweep(recipient, donor, batch, donor_batch, metric, site, layers, cols, None, max_rows, reuse),
        "layer_pos",
        site,
        metric,
        [batch.tokens[0][p] for p in pos],
        [batch.classes[0][p] for p in pos],
        {"positions": pos, "n_prompts": int(batch.input_ids.shape[0])},
    )


def patch_layer_class(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    site: Site = "resid_pre",
    layers: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    donor_batch: LabelledBatch | None = None,
    max_rows: int = 256,
    reuse: bool = True,
) -> LocalizationResult:
    """Patch `site` at all positions of each token class at once, per layer."""
    cols, names = class_columns(batch, classes)
    return grid_result(
        _sweep(recipient, donor, batch, donor_batch, metric, site, layers, cols, None, max_rows, reuse),
        "layer_class",
        site,
        metric,
        names,
        names,
        {"n_prompts": int(batch.input_ids.shape[0])},
    )


def patch_layer_head(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    layers: Sequence[int] | None = None,
    donor_batch: LabelledBatch | None = None,
    max_rows: int = 256,
    reuse: bool = True,
) -> LocalizationResult:
    """Patch each attention head's output (hook_z) at every position, per layer."""
    n_heads = int(as_bridge(recipient).cfg.n_heads)
    cols, heads = head_columns(batch, n_heads)
    return grid_result(
        _sweep(recipient, donor, batch, donor_batch, metric, "z", layers, cols, heads, max_rows, reuse),
        "layer_head",
        "z",
        metric,
        [f"H{h}" for h in range(n_heads)],
        None,
        {"n_prompts": int(batch.input_ids.shape[0])},
    )
