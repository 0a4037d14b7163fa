"""Batched activation patching between two hooked models on the same prompts (donor -> recipient).

Student -> base is denoising (how much of the trait a patch restores), base -> student is noising. The
metric is the trait's log-probability as the first answer token (or its log-prob difference to a
reference answer) at the answer position, averaged over prompts and normalised so 0 = recipient and
1 = donor (reports read both directions 0 = reference, 1 = student: `results.on_student_scale`).

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

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp import InterpError
from interp.mech import intervene
from interp.mech.columns import aligned_columns, grid_columns
from interp.mech.grid import Metric, PatchGrid, full_passes
from interp.mech.hook_names import SITES, Site, check_layers, check_site, hook_name
from interp.mech.hooked import HookedModel
from interp.mech.metrics import TraitMetric, trait_metric  # noqa: F401 (their home before metrics.py)
from interp.mech.positions import LabelledBatch
from interp.mech.results import LocalizationResult
from interp.mech.resume import recipient_run, resumed_grid

Model = HookedModel | TransformerBridge


def as_bridge(model: Model) -> TransformerBridge:
    """The bridge of a hooked model, checked to be in eval mode (patching needs deterministic runs)."""
    bridge = intervene.as_bridge(model)
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
    names = {hook_name(site, layer, bridge.cfg.n_layers): layer for layer in layers}
    device = bridge.cfg.device
    logits, cache = bridge.run_with_cache(
        batch.input_ids.to(device), names_filter=list(names), attention_mask=batch.attention_mask.to(device)
    )
    return {layer: cache[name] for name, layer in names.items()}, None if metric is None else metric(logits)


def _has_position_axis(site: Site) -> bool:
    """Whether activations at `site` have the position axis right after the batch axis."""
    return SITES[check_site(site)][1].startswith("pos")


@torch.no_grad()
def patch_grid(
    recipient: Model,
    donor_acts: dict[int, Tensor],
    batch: LabelledBatch,
    site: Site,
    grid: PatchGrid,
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
        return resumed_grid(bridge, run, donor_acts, site, grid, metric, max_rows).cpu()
    per_pass = max(1, max_rows // batch.input_ids.shape[0])
    out = [
        full_passes(bridge, donor_acts, batch, site, grid[i : i + per_pass], metric)
        for i in range(0, len(grid), per_pass)
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


@dataclass
class Sweep:
    """A sweep's metric per (layer, column, prompt), the two unpatched runs per prompt, which prompts each
    column patches, and which cells patch nothing (donor and recipient activations identical there)."""

    layers: list[int]
    per_prompt: Float[Tensor, "layer col batch"]
    recipient: Float[Tensor, " batch"]
    donor: Float[Tensor, " batch"]
    present: Bool[Tensor, "col batch"]
    identical: Bool[Tensor, "layer col"] | None = None

    def pooled(self) -> tuple[Tensor, Tensor, Tensor]:
        """(raw, score, spread) per (layer, column), over the prompts the column patches.

        Each prompt's effect is (patched - its recipient run) / G, with G the mean donor - recipient gap
        over all prompts; score = mean effect, spread = its standard deviation across prompts, raw = the
        recipient's mean metric + score * G (so `normalise(raw, recipient, donor)` gives the score)."""
        gap = float(self.donor.mean() - self.recipient.mean())
        present = self.present[None].float()  # (1, col, batch)
        n = present.sum(-1).clamp(min=1)
        effect = (self.per_prompt - self.recipient) * present  # (layer, col, batch)
        mean = effect.sum(-1) / n
        var = (((effect - mean[..., None]) * present) ** 2).sum(-1) / (n - 1).clamp(min=1)
        scale = gap if abs(gap) >= 1e-12 else float("nan")
        return float(self.recipient.mean()) + mean, mean / scale, var.sqrt() / abs(scale)


def _identical(
    recipient: Model,
    batch: LabelledBatch,
    site: Site,
    layers: list[int],
    donor_acts: dict[int, Tensor],
    cols: Tensor,
) -> Bool[Tensor, "layer col"]:
    """Cells where the donor's activation equals the recipient's at every patched position: the patch is a
    no-op there (a structural zero, e.g. resid_pre of layer 0 under LoRA, which leaves the embedding alone)."""
    own, _ = donor_activations(recipient, batch, site, layers)
    out = torch.zeros(len(layers), cols.shape[0], dtype=torch.bool)
    for i, layer in enumerate(layers):
        same = (own[layer] == donor_acts[layer]).flatten(2).all(-1).cpu()  # (batch, pos)
        out[i] = (same[None] | ~cols).flatten(1).all(-1)
    return out


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
) -> Sweep:
    """Exact patching of every (layer, column) cell, per prompt."""
    donor_batch = _check_pair(recipient, donor, batch, donor_batch)
    layer_list = check_layers(layers, as_bridge(recipient).cfg.n_layers)
    n_cols = cols.shape[0]
    cells = PatchGrid(
        layer=torch.tensor(layer_list).repeat_interleave(n_cols),
        pos=cols.repeat(len(layer_list), 1, 1),
        head=None if heads is None else heads.repeat(len(layer_list), 1),
    )
    acts, donor_metric = donor_activations(donor, donor_batch, site, layer_list, metric)
    # One extra cell that patches nothing gives the recipient's own metric in the same forward pass.
    baseline = PatchGrid(
        torch.tensor(layer_list[:1]),
        torch.zeros_like(cells.pos[:1]),
        None if heads is None else torch.zeros_like(cells.head[:1]),
    )
    both = PatchGrid(
        torch.cat([cells.layer, baseline.layer]),
        torch.cat([cells.pos, baseline.pos]),
        None if heads is None else torch.cat([cells.head, baseline.head]),
    )
    out = patch_grid(recipient, acts, batch, site, both, metric, max_rows, reuse)  # (cell, batch)
    same = (
        None
        if heads is not None or donor_batch is not batch
        else _identical(recipient, batch, site, layer_list, acts, cols)
    )
    per = out[:-1].view(len(layer_list), n_cols, -1)
    return Sweep(layer_list, per, out[-1], donor_metric.float().cpu(), cols.any(2), same)


def _metric_name(metric: Metric) -> str:
    return getattr(metric, "name", getattr(metric, "__name__", "metric"))


def grid_result(
    sweep: Sweep,
    kind: str,
    site: str,
    metric: Metric,
    labels: list[str],
    classes: list[str] | None,
    config: dict,
    method: str = "exact",
) -> LocalizationResult:
    """Wrap a sweep as a labelled result, pooled over the prompts each column patches."""
    raw, scores, spread = sweep.pooled()
    n_present = sweep.present.sum(1).tolist()
    return LocalizationResult(
        scores=scores,
        raw=raw,
        kind=kind,
        site=site,
        metric=_metric_name(metric),
        layers=sweep.layers,
        col_labels=labels,
        col_classes=classes,
        recipient_metric=float(sweep.recipient.mean()),
        donor_metric=float(sweep.donor.mean()),
        method=method,
        config={**config, "n_present": n_present},
        spread=spread,
        identical=sweep.identical,
    )


Engine = Callable[..., Sweep]


def exact_engine(max_rows: int = 256, reuse: bool = True) -> Engine:
    """Exact patching as a `layer_grid` engine."""
    return functools.partial(_sweep, max_rows=max_rows, reuse=reuse)


def layer_grid(
    engine: Engine,
    method: str,
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    kind: str,
    site: Site,
    layers: Sequence[int] | None,
    select: Sequence | None = None,
    donor_batch: LabelledBatch | None = None,
) -> LocalizationResult:
    """One localization grid by `engine` (exact patching `_sweep`, or an estimate with its signature)."""
    n_heads = int(as_bridge(recipient).cfg.n_heads)
    cols, heads, labels, classes, config = grid_columns(batch, kind, n_heads, select)
    swept = engine(recipient, donor, batch, donor_batch, metric, site, layers, cols, heads)
    return grid_result(swept, kind, site, metric, labels, classes, config, method)


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
    engine = exact_engine(max_rows, reuse)
    return layer_grid(
        engine, "exact", recipient, donor, batch, metric, "layer_pos", site, layers, positions, donor_batch
    )


def patch_layer_aligned(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    site: Site = "resid_pre",
    layers: Sequence[int] | None = None,
    donor_batch: LabelledBatch | None = None,
    max_rows: int = 256,
    reuse: bool = True,
) -> LocalizationResult:
    """Patch `site` at each (layer, aligned position) over prompts of any length: column (class c, k) patches
    the k-th token of class c in every prompt that has one; scores average over those prompts, `spread` is
    their standard deviation and `config["n_present"]` their number."""
    engine = exact_engine(max_rows, reuse)
    return layer_grid(
        engine, "exact", recipient, donor, batch, metric, "layer_aligned", site, layers, None, donor_batch
    )


def patch_head_aligned(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    layer: int,
    donor_batch: LabelledBatch | None = None,
    max_rows: int = 256,
    reuse: bool = True,
) -> LocalizationResult:
    """Patch each head's output (hook_z) of block `layer` at each aligned position: rows are heads (kind
    "head_aligned"; `layers` holds head indices and `config["layer"]` the block)."""
    n_heads = int(as_bridge(recipient).cfg.n_heads)
    cols, labels, classes = aligned_columns(batch)
    n_cols = cols.shape[0]
    heads = torch.eye(n_heads, dtype=torch.bool).repeat_interleave(n_cols, 0)  # (head x col, head)
    swept = _sweep(
        recipient,
        donor,
        batch,
        donor_batch,
        metric,
        "z",
        [layer],
        cols.repeat(n_heads, 1, 1),
        heads,
        max_rows,
        reuse,
    )
    by_head = Sweep(
        list(range(n_heads)),
        swept.per_prompt.view(n_heads, n_cols, -1),
        swept.recipient,
        swept.donor,
        swept.present[:n_cols],
    )
    config = {
        "n_prompts": int(batch.input_ids.shape[0]),
        "layer": layer,
        "aligned": "token class and index within the class",
    }
    return grid_result(by_head, "head_aligned", "z", metric, labels, classes, config)


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
    engine = exact_engine(max_rows, reuse)
    return layer_grid(
        engine, "exact", recipient, donor, batch, metric, "layer_class", site, layers, classes, donor_batch
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
    engine = exact_engine(max_rows, reuse)
    return layer_grid(
        engine, "exact", recipient, donor, batch, metric, "layer_head", "z", layers, None, donor_batch
    )
