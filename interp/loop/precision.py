"""Training precision and gradient checkpointing: how a student's weights, gradients and optimizer states
are stored, and in which dtype its forward and backward passes compute.

  fp32        fp32 weights, gradients and optimizer states; no autocast.
  bf16-mixed  fp32 master weights (the trainable parameters are kept in, or cast to, fp32), fp32
              gradients and optimizer states; the forward (and so the backward) pass runs under
              `torch.autocast(device_type, torch.bfloat16)`. Frozen weights stay in the loaded dtype.
  bf16-pure   every weight, gradient and optimizer state in bf16, no master copy: the comparison arm.
              An update below bf16's resolution (1/256 of a weight near 1) is lost.
  auto        bf16-mixed when the loaded model is bf16, else fp32.

A LoRA adapter is fp32 under fp32 and bf16-mixed (peft also upcasts it by default). After training the
student gets back the loaded dtype, except a LoRA adapter, which keeps the dtype it trained in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from interp import InterpError

PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16-pure")


def resolve_precision(precision: str, loaded: torch.dtype) -> str:
    """The precision a run uses: `precision` itself, or for "auto" bf16-mixed on a bf16 model, else fp32."""
    if precision not in PRECISIONS:
        raise InterpError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16-mixed" if loaded == torch.bfloat16 else "fp32"


def loaded_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model was loaded in: that of its input embedding (frozen under LoRA, never upcast)."""
    return model.get_input_embeddings().weight.dtype


@dataclass(frozen=True)
class Numerics:
    """A student's training precision (resolved), where it runs, and the dtype it was loaded in."""

    precision: str
    device_type: str
    loaded: torch.dtype

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context the forward pass runs in: bf16 autocast under bf16-mixed, else nothing."""
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def restore(self, student: nn.Module) -> None:
        """Return the student's weights to the loaded dtype (a LoRA adapter keeps its training dtype)."""
        adapter = hasattr(student, "peft_config")
        for p in student.parameters():
            if not (adapter and p.requires_grad) and p.dtype != self.loaded:
                p.data = p.data.to(self.loaded)


def _trainable(model: nn.Module) -> Iterator[nn.Parameter]:
    return (p for p in model.parameters() if p.requires_grad)


def prepare_precision(student: nn.Module, cfg: Any) -> Numerics:
    """Cast the student for `cfg.precision` (a `TrainConfig`) before its optimizer is built, and turn on
    `cfg.grad_checkpointing`; the returned `Numerics` gives the forward pass's autocast context and
    restores the loaded dtype after training."""
    loaded = loaded_dtype(student)
    precision = resolve_precision(cfg.precision, loaded)
    if precision == "fp32":
        student.float()
    elif precision == "bf16-pure":
        student.to(torch.bfloat16)
    else:  # bf16-mixed: fp32 master copies of what trains; frozen weights stay as loaded
        for p in _trainable(student):
            p.data = p.data.float()
    set_grad_checkpointing(student, cfg.grad_checkpointing)
    return Numerics(precision, next(student.parameters()).device.type, loaded)


def set_grad_checkpointing(student: nn.Module, enabled: bool) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping them: only the
    layers' inputs are stored (non-reentrant checkpointing, so a LoRA student needs no input gradients)."""
    if not enabled:
        return
    model = student.get_base_model() if hasattr(student, "get_base_model") else student
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise InterpError(f"{type(model).__name__} does not support gradient checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x names it so
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def grad_checkpointing_on(model: nn.Module) -> bool:
    """Whether any module of `model` recomputes its activations in the backward pass."""
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
