"""Hook names for TransformerLens bridges, from one typed helper instead of string shorthands.

`hook_name("resid_pre", 3)` -> "blocks.3.hook_resid_pre" (site first, then layer, as in every function of
`interp.mech` that takes both: `patched(model, site, layer, ...)`, like TransformerLens's `get_act_name`). Every activation site the toolkit patches is a
row of `SITES`, so a new site is one line here, not a new branch somewhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from interp import InterpError

Site = Literal["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern"]

# site -> (hook name template, activation layout after the batch axis)
SITES: dict[str, tuple[str, str]] = {
    "resid_pre": ("blocks.{layer}.hook_resid_pre", "pos d_model"),
    "resid_mid": ("blocks.{layer}.hook_resid_mid", "pos d_model"),
    "resid_post": ("blocks.{layer}.hook_resid_post", "pos d_model"),
    "attn_out": ("blocks.{layer}.hook_attn_out", "pos d_model"),
    "mlp_out": ("blocks.{layer}.hook_mlp_out", "pos d_model"),
    "z": ("blocks.{layer}.attn.hook_z", "pos head d_head"),
    "q": ("blocks.{layer}.attn.hook_q", "pos head d_head"),
    "k": ("blocks.{layer}.attn.hook_k", "pos head d_head"),
    "v": ("blocks.{layer}.attn.hook_v", "pos head d_head"),
    "pattern": ("blocks.{layer}.attn.hook_pattern", "head query_pos key_pos"),
}
assert set(SITES) == set(get_args(Site))


def check_site(site: str) -> str:
    """`site` if it is a known activation site, else a clear error listing the known ones."""
    if site not in SITES:
        raise InterpError(f"unknown activation site {site!r}; choose one of {sorted(SITES)}")
    return site


def check_layer(layer: int, n_layers: int | None) -> int:
    """`layer` if it is a valid block index for a model with `n_layers` blocks (negatives count back)."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InterpError(f"layer must be an integer, got {layer!r}")
    if n_layers is None:
        if layer < 0:
            raise InterpError(f"layer {layer} is negative and the model's depth is unknown")
        return layer
    if not -n_layers <= layer < n_layers:
        raise InterpError(
            f"layer {layer} is out of range: the model has {n_layers} layers (0..{n_layers - 1})"
        )
    return layer % n_layers


def check_layers(layers: Iterable[int] | None, n_layers: int) -> list[int]:
    """Validated, de-duplicated, sorted block indices (all layers when `layers` is None)."""
    if layers is None:
        return list(range(n_layers))
    out = sorted({check_layer(layer, n_layers) for layer in layers})
    if not out:
        raise InterpError("an empty list of layers was given")
    return out


def hook_name(site: Site, layer: int, n_layers: int | None = None) -> str:
    """The TransformerLens hook name of `site` in block `layer` (validated against `n_layers` if given).

    >>> hook_name("resid_pre", 3)
    'blocks.3.hook_resid_pre'
    >>> hook_name("z", -1, n_layers=4)
    'blocks.3.attn.hook_z'
    """
    template, _ = SITES[check_site(site)]
    return template.format(layer=check_layer(layer, n_layers))


def has_heads(site: str) -> bool:
    """Whether activations at `site` carry a head axis right after the position axis."""
    return SITES[check_site(site)][1].startswith("pos head")
