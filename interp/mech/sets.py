"""Claim 4's position sets, and set patching: a model's whole computation at a set, taken from another.

`SHIFT_SETS` splits every prompt into six disjoint position sets that cover it: the entity, the rest of
the system prompt, the template before the assistant header, the header without the readout position,
the readout position (the last prompt position, where the metric reads the next token), and the user turn.

Claim 4 asks where the student's shift lives. Restricted LoRA (`interp.mech.restrict`) answers by giving
a set S of positions the student's *weights*; set patching answers by giving S the student's
*activations*: the embedding and every block's attention and MLP output at S are replaced by the donor's,
in one forward pass per set. Denoising (student into base) at S is the counterpart of "adapter only at
S"; noising (base into student) at S is the counterpart of "adapter everywhere except S".

The two differ where the student's computation at S depends on what it computed elsewhere: a patch
carries the student's whole context into S (its activations there were computed attending to its own
earlier positions), while a restricted adapter recomputes S in the base's context. Patching every
position of a LoRA student gives back the donor exactly; for a full-FT student the final norm and the
unembedding stay the recipient's.

    masks = shift_set_masks(batch)
    per_prompt = patch_sets(base, student, batch, trait_metric(tok, "owl", probability=True), masks)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.mech.columns import READOUT, SHIFT_SETS, shift_set_masks
from interp.mech.grid import Metric
from interp.mech.hook_names import Site, hook_name
from interp.mech.intervene import Replace, patched
from interp.mech.patching import Model, as_bridge, exact_engine, layer_grid, run_metric
from interp.mech.positions import LabelledBatch
from interp.mech.results import LocalizationResult

RECIPIENT, DONOR = "recipient", "donor"
__all__ = ["READOUT", "SHIFT_SETS", "patch_layer_set", "patch_sets", "shift_set_masks"]


def block_sites(n_layers: int) -> list[tuple[str, int]]:
    """(site, layer) of everything a block writes into the residual stream, and the embedding."""
    return [("resid_pre", 0)] + [
        (site, layer) for layer in range(n_layers) for site in ("attn_out", "mlp_out")
    ]


@torch.no_grad()
def patch_sets(
    recipient: Model,
    donor: Model,
    batch: LabelledBatch,
    metric: Metric,
    sets: dict[str, Bool[Tensor, "batch pos"]],
) -> dict[str, Float[Tensor, " batch"]]:
    """The metric per prompt with the donor's embedding and block outputs at each set's positions (one
    forward per set), and the unpatched recipient's and donor's metric (keys "recipient", "donor")."""
    bridge, donor_bridge = as_bridge(recipient), as_bridge(donor)
    device = bridge.cfg.device
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    sites = block_sites(int(bridge.cfg.n_layers))
    names = [hook_name(site, layer) for site, layer in sites]
    donor_logits, cache = donor_bridge.run_with_cache(ids, names_filter=names, attention_mask=mask)
    out = {RECIPIENT: run_metric(recipient, batch, metric).cpu(), DONOR: metric(donor_logits).cpu()}
    for set_name, where in sets.items():
        with contextlib.ExitStack() as stack:
            for (site, layer), name in zip(sites, names, strict=True):
                stack.enter_context(patched(bridge, site, layer, Replace(cache[name]), positions=where))
            out[set_name] = metric(bridge(ids, attention_mask=mask)).cpu()
    return out


def patch_layer_set(
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
    """Patch one site at all positions of each of `SHIFT_SETS` at once, per layer: a layer x set grid
    (which layers act at the readout, apart from the header it belongs to) at a few columns' cost where a
    layer x position grid is out of reach."""
    engine = exact_engine(max_rows, reuse)
    return layer_grid(
        engine, "exact", recipient, donor, batch, metric, "layer_set", site, layers, None, donor_batch
    )
