"""Attribution patching: a linear estimate of every patching cell from one forward and one backward pass.

For a cell that replaces the recipient's activation a by the donor's a', the metric changes by about
(a' - a) . dM/da (Nanda, "Attribution Patching", 2023). One backward pass of the recipient gives dM/da at
every layer and position, so a whole layer x position (or x class, or x head) grid costs two passes
instead of one per cell. `agreement` reports how well the estimate tracks exact patching.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.mech.hook_names import Site, check_layers, has_heads, hook_name
from interp.mech.patching import (
    Metric,
    Model,
    Sweep,
    _check_pair,
    as_bridge,
    donor_activations,
    layer_grid,
    run_metric,
)
from interp.mech.positions import LabelledBatch
from interp.mech.results import LocalizationResult


def recipient_gradients(
    recipient: Model, batch: LabelledBatch, metric: Metric, site: Site, layers: Sequence[int]
) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """The recipient's activations at `site` and the gradient of the prompt-mean metric with respect to them."""
    bridge = as_bridge(recipient)
    acts: dict[int, Tensor] = {}

    def keep(layer: int):
        def hook(act: Tensor, hook: object = None) -> Tensor:
            if not act.requires_grad:  # frozen weights: make this activation a leaf we can differentiate
                act = act.detach().clone().requires_grad_(True)
            acts[layer] = act
            return act

        return hook

    device = bridge.cfg.device
    hooks = [(hook_name(site, layer, bridge.cfg.n_layers), keep(layer)) for layer in layers]
    with torch.enable_grad():
        logits = bridge.run_with_hooks(
            batch.input_ids.to(device), fwd_hooks=hooks, attention_mask=batch.attention_mask.to(device)
        )
        grads = torch.autograd.grad(
            metric(logits).mean(), [acts[layer] for layer in layers], allow_unused=True
        )
    grad = {
        layer: torch.zeros_like(acts[layer]) if g is None else g
        for layer, g in zip(layers, grads, strict=True)
    }
    return {layer: a.detach() for layer, a in acts.items()}, grad


def _estimate(
    delta_dot_grad: Float[Tensor, "batch pos *head"],
    cols: Bool[Tensor, "col batch pos"],
    heads: Bool[Tensor, "col head"] | None,
) -> Float[Tensor, "col batch"]:
    """Linear estimate per column and prompt: sum of (a' - a) . grad over the column's positions (and heads)."""
    if heads is None:
        per_pos = delta_dot_grad.sum(tuple(range(2, delta_dot_grad.ndim)))  # (batch, pos)
        return (cols * per_pos[None]).sum(2)
    return torch.einsum("cbp,bph,ch->cb", cols.float(), delta_dot_grad, heads.float())


def _attribute(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    donor_batch: LabelledBatch | None,
    metric: Metric,
    site: Site,
    layers: Sequence[int] | None,
    cols: Tensor,
    heads: Tensor | None,
) -> Sweep:
    donor_batch = _check_pair(recipient, donor, batch, donor_batch)
    layer_list = check_layers(layers, as_bridge(recipient).cfg.n_layers)
    donor_acts, donor_metric = donor_activations(donor, donor_batch, site, layer_list, metric)
    acts, grads = recipient_gradients(recipient, batch, metric, site, layer_list)
    rows = []
    n_prompts = batch.input_ids.shape[0]  # the gradient is of the prompt mean: x n_prompts per prompt
    for layer in layer_list:
        prod = (donor_acts[layer] - acts[layer]) * grads[layer] * n_prompts  # (batch, pos, ...)
        prod = prod.sum(-1) if has_heads(site) else prod  # (batch, pos, head) for head sites
        rows.append(_estimate(prod.float().cpu(), cols, heads))
    rec = run_metric(recipient, batch, metric).float().cpu()
    per = rec + torch.stack(rows)  # (layer, col, batch)
    return Sweep(layer_list, per, rec, donor_metric.float().cpu(), cols.any(2))


def attribute_layer_pos(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    site: Site = "resid_pre",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    donor_batch: LabelledBatch | None = None,
) -> LocalizationResult:
    """Attribution-patching estimate of `interp.mech.patching.patch_layer_pos` (same layout, method "attribution")."""
    return layer_grid(
        _attribute,
        "attribution",
        recipient,
        donor,
        batch,
        metric,
        "layer_pos",
        site,
        layers,
        positions,
        donor_batch,
    )


def attribute_layer_aligned(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    site: Site = "resid_pre",
    layers: Sequence[int] | None = None,
    donor_batch: LabelledBatch | None = None,
) -> LocalizationResult:
    """Attribution-patching estimate of `interp.mech.patching.patch_layer_aligned`."""
    return layer_grid(
        _attribute,
        "attribution",
        recipient,
        donor,
        batch,
        metric,
        "layer_aligned",
        site,
        layers,
        None,
        donor_batch,
    )


def attribute_layer_class(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    site: Site = "resid_pre",
    layers: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    donor_batch: LabelledBatch | None = None,
) -> LocalizationResult:
    """Attribution-patching estimate of `interp.mech.patching.patch_layer_class`."""
    return layer_grid(
        _attribute,
        "attribution",
        recipient,
        donor,
        batch,
        metric,
        "layer_class",
        site,
        layers,
        classes,
        donor_batch,
    )


def attribute_layer_head(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    layers: Sequence[int] | None = None,
    donor_batch: LabelledBatch | None = None,
) -> LocalizationResult:
    """Attribution-patching estimate of `interp.mech.patching.patch_layer_head`."""
    return layer_grid(
        _attribute,
        "attribution",
        recipient,
        donor,
        batch,
        metric,
        "layer_head",
        "z",
        layers,
        None,
        donor_batch,
    )


def _ranks(x: Tensor) -> Tensor:
    return x.argsort().argsort().double()


def agreement(exact: LocalizationResult, approx: LocalizationResult) -> dict[str, float]:
    """Pearson and Spearman correlation of two results' metric effects over their shared finite cells."""
    a, b = (exact.raw - exact.recipient_metric).flatten().double(), (approx.raw - approx.recipient_metric)
    b = b.flatten().double()
    if a.shape != b.shape:
        raise ValueError(
            f"results have different grids: {tuple(exact.raw.shape)} vs {tuple(approx.raw.shape)}"
        )
    keep = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[keep], b[keep]
    if a.numel() < 2 or a.std() == 0 or b.std() == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "n_cells": int(a.numel())}
    pearson = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    spearman = float(torch.corrcoef(torch.stack([_ranks(a), _ranks(b)]))[0, 1])
    return {"pearson": pearson, "spearman": spearman, "n_cells": int(a.numel())}
