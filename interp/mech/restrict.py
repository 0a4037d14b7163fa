"""Position-restricted LoRA: the adapter on only at a set of positions S, or everywhere except S.

Claim 4 of the paper: turning the adapter on only at the entity token recovers most of the trait, and
turning it on everywhere except there returns the model to baseline. `restrict_lora` does this for any
PEFT LoRA model by masking each LoRA layer's delta per position inside the forward pass: a forward hook
on every `lora_B` multiplies its output, shape (batch, pos, d_out), by a gate of shape (batch, pos, 1).
The gate is recomputed from `input_ids` at each forward call of the wrapped model, so it works batched,
with left padding, at any depth, and with the KV cache during `generate` (where each later call feeds
only new tokens: those are "generated" positions, gated by the `generated` rule).

    with restrict_lora(student, tok, by_class(ENTITY), mode="only"):
        only_entity = evaluate_trait(student, tok, EvalSettings("owl"))  # adapter only at the entity token
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float
from peft.tuners.lora import LoraLayer
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from interp import InterpError
from interp.loop.evaluation import evaluate_trait
from interp.mech.hook_names import check_layers
from interp.mech.positions import GENERATED, Positions, label_ids

Mode = Literal["only", "except"]
ModuleKind = Literal["attn", "mlp"]

CACHE_KWARGS = ("past_key_values", "cache")
# The attribute under which a decoder block (HF's layer or TransformerLens's bridge block) holds its
# attention and its MLP.
SUBLAYERS: dict[ModuleKind, tuple[str, ...]] = {"attn": ("self_attn", "attn"), "mlp": ("mlp",)}


@dataclass
class _Gate:
    """The gate of the current forward call, shared by all LoRA hooks of one restriction."""

    tok: PreTrainedTokenizerBase
    where: Positions
    mode: Mode
    generated: bool | None
    entity: str | None
    value: Float[Tensor, "batch pos 1"] | None = None
    labels_cache: dict[tuple[int, ...], list[str]] = field(default_factory=dict)

    def update(self, input_ids: Tensor, attention_mask: Tensor | None, n_cached: int) -> None:
        """Compute the gate for a forward call over `input_ids` after `n_cached` cached positions."""
        if n_cached > 0:  # KV-cache step: every new position is a generated token
            on = self.generated if self.generated is not None else self._generated_default()
            self.value = torch.full((*input_ids.shape, 1), float(on), device=input_ids.device)
            return
        if attention_mask is not None and attention_mask.shape[1] != input_ids.shape[1]:
            attention_mask = attention_mask[:, -input_ids.shape[1] :]
        selected = self.where.mask(self.tok, input_ids.cpu(), _cpu(attention_mask), self.entity)
        on = selected if self.mode == "only" else ~selected
        if self.generated is not None:
            gen = self._generated_mask(input_ids.cpu(), _cpu(attention_mask))
            on = torch.where(gen, torch.tensor(self.generated), on)
        self.value = on.to(input_ids.device, torch.float32)[..., None]

    def _generated_default(self) -> bool:
        """Without an explicit rule, a new token counts as a "generated" position of the selector."""
        in_s = self.where.kind == "all" or (self.where.kind == "class" and GENERATED in self.where.classes)
        return in_s if self.mode == "only" else not in_s

    def _generated_mask(self, input_ids: Tensor, attention_mask: Tensor | None) -> Bool[Tensor, "batch pos"]:
        labels = label_ids(self.tok, input_ids, attention_mask, self.entity)
        return torch.tensor([[c == GENERATED for c in row] for row in labels], dtype=torch.bool)


def _cpu(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.cpu()


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's decoder blocks, in order: HF's `get_decoder().layers` or a bridge's `blocks`."""
    root = _root(model)
    get_decoder = getattr(root, "get_decoder", None)
    blocks = (
        getattr(get_decoder(), "layers", None) if callable(get_decoder) else getattr(root, "blocks", None)
    )
    if not isinstance(blocks, nn.ModuleList):
        raise InterpError(
            f"cannot find the decoder blocks of {type(root).__name__} to restrict its LoRA by layer"
        )
    return blocks


def lora_sites(model: nn.Module) -> dict[str, tuple[int | None, ModuleKind | None]]:
    """(block index, "attn" | "mlp") of each LoRA layer, read from the model's structure: the decoder block
    that holds it and the sublayer it sits in (None where it sits outside the blocks or both sublayers)."""
    found = lora_layers(model)
    name_of = {id(m): name for name, m in found.items()}
    sites: dict[str, tuple[int | None, ModuleKind | None]] = dict.fromkeys(found, (None, None))
    for index, block in enumerate(decoder_blocks(model)):
        for m in block.modules():
            if id(m) in name_of:
                sites[name_of[id(m)]] = (index, None)
        for kind, attrs in SUBLAYERS.items():
            sub = next(
                (getattr(block, a) for a in attrs if isinstance(getattr(block, a, None), nn.Module)), None
            )
            for m in sub.modules() if sub is not None else ():
                if id(m) in name_of:
                    sites[name_of[id(m)]] = (index, kind)
    return sites


def lora_layers(model: nn.Module) -> dict[str, LoraLayer]:
    """The unmerged PEFT LoRA layers of `model` by module path (an error if none, merged or a variant)."""
    found = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer) and len(m.lora_B) > 0}
    if not found:
        raise InterpError("the model has no PEFT LoRA layers: load the student with merge=False")
    for name, m in found.items():
        if getattr(m, "merged", False):
            raise InterpError(
                f"LoRA layer {name} is merged into its weights; unmerge it to restrict by position"
            )
        if getattr(m, "lora_variant", None) or getattr(m, "use_dora", {}).get(m.active_adapters[0], False):
            raise InterpError(
                f"LoRA layer {name} uses a variant (e.g. DoRA) that cannot be gated by position"
            )
    return found


def _root(model: nn.Module) -> nn.Module:
    """The module whose forward sees `input_ids` in both model(...) and model.generate(...)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _n_cached(ids: Tensor, kwargs: dict[str, Any]) -> int:
    """Positions already in the KV cache before this call (transformers names the cache either way)."""
    n = 0
    for key in CACHE_KWARGS:
        past = kwargs.get(key)
        if past is not None and hasattr(past, "get_seq_length"):
            n = max(n, int(past.get_seq_length()))
    mask = kwargs.get("attention_mask")
    if isinstance(mask, Tensor) and mask.ndim == 2:
        n = max(n, mask.shape[1] - ids.shape[-1])
    return n


def _selected(site: tuple[int | None, str | None], layers: set[int] | None, modules: set[str] | None) -> bool:
    layer, kind = site
    return (layers is None or layer in layers) and (modules is None or kind in modules)


def _check_modules(modules: Sequence[str] | None) -> set[str] | None:
    if modules is None:
        return None
    bad = set(modules) - {"attn", "mlp"}
    if bad or not modules:
        raise InterpError(f"modules must be a non-empty subset of ('attn', 'mlp'), got {list(modules)}")
    return set(modules)


@contextlib.contextmanager
def restrict_lora(
    model: nn.Module,
    tok: PreTrainedTokenizerBase,
    where: Positions,
    mode: Mode = "only",
    layers: Sequence[int] | None = None,
    modules: Sequence[ModuleKind] | None = None,
    generated: bool | None = None,
    outside: bool = False,
    entity: str | None = None,
) -> Iterator[_Gate]:
    """Within the block, the LoRA adapter of `model` is on only at `where` (mode "only") or only off there.

    `layers` / `modules` ("attn", "mlp") choose the LoRA layers the position rule applies to; the others
    are fully off (or fully on with `outside=True`). `generated` is the adapter's state at newly generated
    tokens (None: they count as positions of class "generated" and follow the rule). `entity` overrides the
    entity detected from each prompt's system prompt. Hooks are removed on exit, even on error.
    """
    if mode not in ("only", "except"):
        raise InterpError(f"mode must be 'only' or 'except', got {mode!r}")
    found = lora_layers(model)
    sites = lora_sites(model)
    layer_set = None if layers is None else set(check_layers(layers, len(decoder_blocks(model))))
    module_set = _check_modules(modules)
    gate = _Gate(tok, where, mode, generated, entity)

    def on_call(_mod: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, Tensor) or ids.is_floating_point():
            raise InterpError("position-restricted LoRA needs input_ids (inputs_embeds carry no positions)")
        ids = ids if ids.ndim == 2 else ids[None]
        gate.update(ids, kwargs.get("attention_mask"), _n_cached(ids, kwargs))

    def gated(_mod: nn.Module, _inp: tuple, out: Tensor) -> Tensor:
        if gate.value is None or gate.value.shape[:2] != out.shape[:2]:
            raise InterpError(
                f"LoRA delta of shape {tuple(out.shape)} does not match the gate computed "
                "from input_ids; call the restricted model itself, not a submodule"
            )
        return out * gate.value.to(out.dtype)

    def closed(_mod: nn.Module, _inp: tuple, out: Tensor) -> Tensor:
        return torch.zeros_like(out)

    handles = [_root(model).register_forward_pre_hook(on_call, with_kwargs=True)]
    try:
        for name, layer in found.items():
            hook = gated if _selected(sites[name], layer_set, module_set) else (None if outside else closed)
            for adapter in layer.active_adapters if hook else ():
                if adapter in layer.lora_B:
                    handles.append(layer.lora_B[adapter].register_forward_hook(hook))
        yield gate
    finally:
        for handle in handles:
            handle.remove()


def describe(where: Positions, mode: Mode, **restriction: Any) -> str:
    """A stable text key of a restriction (evaluation caches must keep restricted runs apart)."""
    items = sorted(
        (k, v if isinstance(v, str | int | bool | None) else list(v)) for k, v in restriction.items()
    )
    return f"restrict:{mode}:{where}:{items}"


def evaluate_trait_restricted(
    model: nn.Module,
    tok: PreTrainedTokenizerBase,
    settings: Any,
    where: Positions,
    mode: Mode = "only",
    cache: Any = None,
    **restriction: Any,
) -> Any:
    """The loop's trait evaluation (mention rate and first-token probability) under a LoRA restriction.

    `settings` is an `interp.loop.evaluation.EvalSettings`. "Adapter only at the entity token" is
    `evaluate_trait_restricted(student, tok, settings, by_class(ENTITY))`; "everywhere but the entity
    token" is the same with `mode="except"`. `restriction` goes to `restrict_lora`; the restriction is
    part of the evaluation cache key.
    """

    with restrict_lora(model, tok, where, mode, **restriction):
        return evaluate_trait(model, tok, settings, cache, extra_key=describe(where, mode, **restriction))
