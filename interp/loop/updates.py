"""How far a student moved from its base: the norm of its weight change, summed over weight matrices.

A LoRA student's change to an adapted matrix is its merged delta (scale * B @ A, as peft merges it); a full
fine-tuning student's is W - W0 for every weight matrix (embeddings and head included; vectors such as
norms and biases are left out, as LoRA never changes them). Two arms can then be compared at a matched
update norm, not only at a matched learning rate.
"""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer
from torch import nn


def lora_deltas(student: nn.Module) -> dict[str, torch.Tensor]:
    """Each adapted matrix's merged change (scale * B @ A) of an unmerged peft LoRA student."""
    return {
        name: m.get_delta_weight(adapter).detach().float()
        for name, m in student.named_modules()
        if isinstance(m, LoraLayer)
        for adapter in m.active_adapters
        if adapter in m.lora_A
    }


def full_deltas(student: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
    """W - W0 for every weight matrix (>= 2 dimensions) of a fully fine-tuned student."""
    base_params = dict(base.named_parameters())
    return {
        name: (p.detach().float() - base_params[name].detach().float())
        for name, p in student.named_parameters()
        if p.ndim >= 2
    }


@torch.no_grad()
def weight_change_norm(student: nn.Module, base: nn.Module | None = None) -> float:
    """Sum over weight matrices of ||delta W||_F: the LoRA deltas when `student` carries adapters, else
    the difference to `base` (required then)."""
    deltas = lora_deltas(student)
    if not deltas:
        if base is None:
            raise ValueError("a student without LoRA adapters needs its base to measure its weight change")
        deltas = full_deltas(student, base)
    return float(sum(d.norm() for d in deltas.values()))
