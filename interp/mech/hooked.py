"""Hooked models: TransformerLens 4.x `TransformerBridge`s over a base model or a student, offline.

One loader, `load_hooked`, covers the four cases the paper needs:

  base model                 load_hooked(base_dir)
  LoRA student, merged       load_hooked(student_dir, base=base_dir)
  LoRA student, unmerged     load_hooked(student_dir, base=base_dir, merge=False)  (adapter stays switchable:
                             `interp.mech.restrict.restrict_lora(hooked.peft, ...)` gates it by position)
  full fine-tuned student    load_hooked(student_dir)                (kind "full_ft": its student.json says so)

The bridge rewrites the HF model it wraps in place, so every bridge gets a freshly loaded model.
Bridges are returned in eval mode (patching requires it) and keep HF's raw weights, so their logits
equal the HF model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from peft import PeftModel
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp import InterpError
from interp.loop.models import (
    STUDENT_META,
    is_lora_student,
    load_model,
    load_student,
    resolve_dtype,
    resolve_model_dir,
)

Kind = Literal["base", "lora_merged", "lora", "full_ft"]


@dataclass
class HookedModel:
    """A bridge with its tokenizer and where it came from (`peft` is set for an unmerged LoRA student)."""

    bridge: TransformerBridge
    tok: PreTrainedTokenizerBase
    kind: Kind
    source: str
    peft: PeftModel | None = None

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.bridge.cfg.n_heads)

    @torch.no_grad()
    def run_with_cache(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        **kwargs: Any,
    ) -> tuple[Float[Tensor, "batch pos vocab"], Any]:
        """(logits, activation cache) of the bridge on a (left-padded) batch; `names_filter=` etc. go to
        TransformerLens, e.g. `names_filter=[hook_name("resid_pre", 2)]`."""
        device = self.bridge.cfg.device
        mask = None if attention_mask is None else attention_mask.to(device)
        return self.bridge.run_with_cache(input_ids.to(device), attention_mask=mask, **kwargs)


def bridge_hf_model(
    hf_model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    config_dir: str | Path,
    dtype: str = "float32",
    device: str = "cpu",
) -> TransformerBridge:
    """Wrap an in-memory HF causal LM (rewritten in place: pass a copy) in a bridge, in eval mode."""
    try:
        bridge = TransformerBridge.boot_transformers(
            str(config_dir), hf_model=hf_model, tokenizer=tok, device=device, dtype=resolve_dtype(dtype)
        )
    except (ValueError, NotImplementedError, KeyError) as err:
        raise InterpError(
            f"TransformerLens cannot wrap model {config_dir}: {str(err).splitlines()[0]}"
        ) from err
    return bridge.eval()


def load_hooked(
    model_dir: str | Path | None = None,
    base: str | Path | None = None,
    merge: bool = True,
    dtype: str = "float32",
    device: str = "cpu",
) -> HookedModel:
    """A bridge over a base model, a LoRA student (on `base`; merged unless `merge=False`) or a full-FT one.

        `model_dir` None means the embedded organism. A directory with the toolkit's student.json that is not a
        LoRA adapter is a full fine-tuned student (kind "full_ft"; `base` is not needed, and given, it marks any
    other directory as one). A LoRA adapter
        trained on another base is an InterpError.
    """
    if model_dir is not None and is_lora_student(model_dir):
        if base is None:
            raise InterpError(
                f"{model_dir} is a LoRA adapter: give the base model it was trained on (base=...)"
            )
        base_dir = resolve_model_dir(base)
        model, tok = load_student(model_dir, base_dir, dtype, device, merge=merge)
        if merge:
            return HookedModel(
                bridge_hf_model(model, tok, base_dir, dtype, device), tok, "lora_merged", str(model_dir)
            )
        inner = model.get_base_model()
        return HookedModel(
            bridge_hf_model(inner, tok, base_dir, dtype, device), tok, "lora", str(model_dir), peft=model
        )
    path = resolve_model_dir(model_dir)  # a full-FT student's: its model
    model, tok = load_model(path, dtype, device)
    is_student = model_dir is not None and ((Path(model_dir) / STUDENT_META).exists() or base is not None)
    kind: Kind = "full_ft" if is_student else "base"
    source = Path(model_dir) if kind == "full_ft" else path
    return HookedModel(bridge_hf_model(model, tok, path, dtype, device), tok, kind, str(source))


@torch.no_grad()
def bridge_logits(
    bridge: TransformerBridge, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits of a bridge on a (left-padded) batch; positions are derived from the mask."""
    return bridge(input_ids, attention_mask=attention_mask)
