"""Batched activation patching between two hooked models on the same prompts (donor -> recipient).

Student -> base is denoising (how much of the trait a patch restores), base -> student is noising. The
metric is the trait's log-probability as the first answer token (or its log-prob difference to a
reference answer) at the answer position, averaged over prompts and normalised so 0 = recipient and
1 = donor.

Unlike `transformer_lens.patching`, which runs one forward pass and one `.item()` per patched cell, a
sweep here stacks many cells along the batch axis: the recipient's prompts are repeated once per cell
and a single hook per layer swaps in the donor's activation wherever that cell's mask is set. Metrics
stay on the device until the end of the sweep.

A cell is (layer, position mask over batch x pos, optional head mask), which covers:
  layer x position  (one column of the prompt batch),
  layer x token class (every position of a class in each prompt at once),
  layer x head      (one head's output z at every position).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerBase

from interp import InterpError
from interp.hook_names import Site, check_layers, hook_name
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


def _patch_hook(donor: Tensor, cells: Cells, layer: int) -> Callable[[Tensor, object], Tensor]:
    """A hook that swaps in the donor's activation at every (row, position[, head]) a cell of `layer` patches."""
    n_cells, batch, width = cells.pos.shape
    mask = (cells.pos & (cells.layer == layer)[:, None, None]).reshape(n_cells * batch, width)  # (row, pos)
    if cells.head is not None:
        mask = mask[:, :, None] & cells.head.repeat_interleave(batch, 0)[:, None, :]  # (row, pos, head)
    source = donor.repeat(n_cells, *([1] * (donor.ndim - 1)))  # (row, pos, ...): row = cell * batch + b

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


@torch.no_grad()
def patch_cells(
    recipient: Model,
    donor_acts: dict[int, Tensor],
    batch: LabelledBatch,
    site: Site,
    cells: Cells,
    metric: Metric,
    max_rows: int = 256,
) -> Float[Tensor, "cell batch"]:
    """The metric of the recipient with each cell patched from `donor_acts`, many cells per forward pass."""
    bridge = as_bridge(recipient)
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
    out = patch_cells(recipient, acts, batch, site, both, metric, max_rows).mean(1)
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
) -> LocalizationResult:
    """Patch `site` at each (layer, position) from donor into recipient; columns labelled by prompt 0's tokens."""
    cols, pos = position_columns(batch, positions)
    return grid_result(
        _sweep(recipient, donor, batch, donor_batch, metric, site, layers, cols, None, max_rows),
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
) -> LocalizationResult:
    """Patch `site` at all positions of each token class at once, per layer."""
    cols, names = class_columns(batch, classes)
    return grid_result(
        _sweep(recipient, donor, batch, donor_batch, metric, site, layers, cols, None, max_rows),
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
) -> LocalizationResult:
    """Patch each attention head's output (hook_z) at every position, per layer."""
    n_heads = int(as_bridge(recipient).cfg.n_heads)
    cols, heads = head_columns(batch, n_heads)
    return grid_result(
        _sweep(recipient, donor, batch, donor_batch, metric, "z", layers, cols, heads, max_rows),
        "layer_head",
        "z",
        metric,
        [f"H{h}" for h in range(n_heads)],
        None,
        {"n_prompts": int(batch.input_ids.shape[0])},
    )
