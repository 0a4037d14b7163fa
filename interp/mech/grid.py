"""A patch grid: many patched cells stacked on the batch axis, each run with `interp.mech.intervene`.

Cell i of a `PatchGrid` patches the positions `pos[i]` (and, for head sites, heads `head[i]`) of every
prompt at block `layer[i]`; a forward pass over the grid repeats the prompts once per cell (row = cell x
prompt) and installs one `patched` intervention per layer, whose row mask is set where that row's cell
patches. `PatchGrid` is what the sweeps in `interp.mech.patching` run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.mech.hook_names import Site
from interp.mech.intervene import Replace, patched
from interp.mech.positions import LabelledBatch

Metric = Callable[[Float[Tensor, "batch pos vocab"]], Float[Tensor, " batch"]]
# A forward pass costs about this many extra token-blocks of work on top of its tokens (the bridge's
# per-call overhead, measured on the organism on CPU); it decides how cells are grouped into passes.
PASS_OVERHEAD_TOKENS = 128


@dataclass(frozen=True)
class PatchGrid:
    """Patched cells: cell i patches `pos[i]` (and, for head sites, heads `head[i]`) in layer `layer[i]`."""

    layer: Int[Tensor, " cell"]
    pos: Bool[Tensor, "cell batch pos"]
    head: Bool[Tensor, "cell head"] | None = None

    def __len__(self) -> int:
        return int(self.layer.shape[0])

    def __getitem__(self, s: slice | Tensor) -> PatchGrid:
        """The cells at `s` (a slice, or a tensor of cell indices)."""
        return PatchGrid(self.layer[s], self.pos[s], None if self.head is None else self.head[s])


@contextlib.contextmanager
def grid_patches(
    bridge: TransformerBridge, site: Site, donor_acts: dict[int, Tensor], grid: PatchGrid, start: int = 0
):
    """Install, for each layer the grid patches, the intervention that swaps in the donor's activation at
    every (row, position[, head]) a cell of that layer patches. With `start` > 0 the runs cover only
    positions `start..` (a resumed run, see `interp.mech.resume`)."""
    n_cells, batch, _ = grid.pos.shape
    with contextlib.ExitStack() as stack:
        for layer in grid.layer.unique().tolist():
            rows = (grid.pos & (grid.layer == layer)[:, None, None])[:, :, start:].reshape(
                n_cells * batch, -1
            )
            heads = None if grid.head is None else grid.head.repeat_interleave(batch, 0)
            donor = donor_acts[layer][:, start:]
            source = Replace(donor.repeat(n_cells, *([1] * (donor.ndim - 1))))
            stack.enter_context(patched(bridge, site, layer, source, positions=rows, heads=heads))
        yield bridge


def full_passes(
    bridge: TransformerBridge,
    donor_acts: dict[int, Tensor],
    batch: LabelledBatch,
    site: Site,
    grid: PatchGrid,
    metric: Metric,
) -> Float[Tensor, "cell batch"]:
    """The metric of full forward passes (from the embeddings) with the cells of `grid` patched, one row per cell x prompt."""
    n_cells, n_prompts = len(grid), batch.input_ids.shape[0]
    device = bridge.cfg.device
    ids = batch.input_ids.repeat(n_cells, 1).to(device)
    mask = batch.attention_mask.repeat(n_cells, 1).to(device)
    with grid_patches(bridge, site, donor_acts, grid):
        logits = bridge(ids, attention_mask=mask)
    return metric(logits).view(n_cells, n_prompts)


def first_patched(grid: PatchGrid) -> list[int]:
    """Per cell, the earliest position it patches in any prompt (the last position if it patches none)."""
    width = grid.pos.shape[-1]
    any_row = grid.pos.any(1)  # (cell, pos)
    first = torch.where(any_row.any(1), any_row.float().argmax(1), torch.tensor(width - 1))
    return first.tolist()


def partition(starts: list[int], width: int, rows_per_cell: int, max_cells: int) -> list[tuple[int, int]]:
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
