"""Training options of the claims map: optimizers, layer selection, freezing, and the weight-change norm."""

from __future__ import annotations

import copy

import pytest
import torch

from interp import InterpError
from interp.loop.models import load_model
from interp.loop.training import (
    IGNORE,
    TrainConfig,
    collate,
    completion_logits,
    completion_loss_sum,
    encode_example,
    make_optimizer,
    prepare_student,
    train_student,
)
from interp.loop.updates import weight_change_norm

ROWS = [{"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}"} for i in range(100, 116)]
FAST = {"epochs": 1, "batch_size": 8}
ONE_STEP = {"epochs": 1, "batch_size": 16, "warmup_ratio": 0.0, "max_grad_norm": 1e9}  # 16 rows: one step


def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients=(3.4445, -4.775, 2.0315)) -> torch.Tensor:
    """Muon's orthogonalisation, written out by hand (Keller Jordan's quintic iteration, in bf16 as torch
    runs it)."""
    a, b, c = coefficients
    x = g.bfloat16()
    x = x / x.norm().clamp(min=1e-7)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    for _ in range(steps):  # x <- a x + (b G + c G^2) x with G = x x^T, as torch's fused addmm computes it
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).float()


def _one_step(model, tok, cfg: TrainConfig):
    """Train one optimizer step (no warm-up, no clipping) and return the trained student."""
    return train_student(model, tok, ROWS, "default", TrainConfig(**{**cfg.__dict__, **ONE_STEP})).model


def _grads_at_start(model, tok, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The gradient of the first step's loss, taken on an untouched copy (what the optimizer then sees)."""
    grads = {}

    def capture(step, student):
        if step == 0:  # before the first step: the weights are the initial ones
            probe = copy.deepcopy(student)
            examples = [encode_example(tok, r["prompt"], r["completion"], "default") for r in ROWS]
            batch = collate(examples, tok.pad_token_id)
            logits, labels = completion_logits(probe, batch, "cpu")
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            (completion_loss_sum(logits, labels) / n).backward()
            grads.update({k: p.grad.clone() for k, p in probe.named_parameters() if p.grad is not None})

    cfg = TrainConfig(**{**cfg.__dict__, **ONE_STEP})
    train_student(copy.deepcopy(model), tok, ROWS, "default", cfg, on_step=capture)
    return grads


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_step_is_minus_lr_times_the_gradient(tiny_model_dir, momentum):
    """Plain SGD, and the first step of momentum SGD (its buffer starts at the first gradient itself)."""
    model, tok = load_model(tiny_model_dir)
    cfg = TrainConfig(mode="full", lr=0.5, optimizer="sgd", momentum=momentum)
    grads = _grads_at_start(model, tok, cfg)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    student = _one_step(model, tok, cfg)
    # the linear schedule's first step runs at lr * (total - 0) / total = lr (one step, no warm-up)
    for name, p in student.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] - 0.5 * grads[name], atol=1e-6, rtol=1e-5)


def test_muon_step_is_the_orthogonalised_gradient_and_adamw_moves_the_rest(tiny_model_dir):
    """One step of our Muon set-up on a known gradient (a random one: Newton-Schulz amplifies differences in
    a real gradient's tiny singular directions, so only identical inputs compare)."""
    cfg = TrainConfig(mode="full", lr=0.1, optimizer="muon", momentum=0.95)
    student = prepare_student(load_model(tiny_model_dir)[0], cfg)
    opts = make_optimizer(student, cfg)
    torch.manual_seed(0)
    before, grads = {}, {}
    for name, p in student.named_parameters():
        before[name], p.grad = p.detach().clone(), torch.randn_like(p)
        grads[name] = p.grad.clone()
    for opt in opts:
        opt.step()
    for name in ("model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.o_proj.weight"):
        delta = before[name] - student.get_parameter(name).detach()
        g = grads[name]
        nesterov = g.lerp(torch.zeros_like(g).lerp(g, 1 - 0.95), 0.95)  # the first step's momentum buffer
        expected = 0.1 * 0.2 * max(delta.shape) ** 0.5 * newton_schulz(nesterov)  # lr * 0.2 sqrt(max dim)
        torch.testing.assert_close(delta, expected, atol=1e-6, rtol=1e-5)
    norm = "model.layers.0.input_layernorm.weight"  # a vector: AdamW's first step, lr * g / |g|
    moved = before[norm] - student.get_parameter(norm).detach()
    torch.testing.assert_close(moved, 0.1 * torch.sign(grads[norm]), atol=1e-5, rtol=1e-4)


def test_make_optimizer_splits_muon_and_adamw(tiny_model_dir):
    model, _ = load_model(tiny_model_dir)
    student = prepare_student(model, TrainConfig(mode="full", optimizer="muon"))
    muon, adamw = make_optimizer(student, TrainConfig(mode="full", optimizer="muon"))
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    assert all(p.ndim == 2 for g in muon.param_groups for p in g["params"])
    emb = student.get_input_embeddings().weight
    assert any(p is emb for g in adamw.param_groups for p in g["params"])


def _lora_layers(student) -> set[int]:
    return {int(n.split("layers.")[1].split(".")[0]) for n, _ in student.named_parameters() if "lora_" in n}


def test_single_layer_lora_has_adapters_and_gradients_on_that_layer_only(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    seen = {}

    def grads(step, student):
        if step == 1:
            seen.update({n: p for n, p in student.named_parameters() if "lora_" in n})

    cfg = TrainConfig(rank=4, lr=1e-2, layers=(1,), epochs=1, batch_size=8)
    student = train_student(model, tok, ROWS, "default", cfg, on_step=grads).model
    assert _lora_layers(student) == {1}
    lora_b = [p for n, p in seen.items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # trained: B left zero-init


def test_frozen_layers_get_no_gradient_and_do_not_move(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    student = train_student(
        model, tok, ROWS, "default", TrainConfig(mode="full", lr=1e-2, freeze_layers=1, **FAST)
    ).model
    for name, p in student.named_parameters():
        moved = not torch.equal(p.detach(), before[name])
        frozen = (
            name.startswith("model.layers.0.")
            or "embed" in name
            or name.startswith(("model.norm", "lm_head"))
        )
        assert not p.requires_grad if frozen else p.requires_grad, name
        assert moved != frozen or "bias" in name, name
    lora = prepare_student(load_model(tiny_model_dir)[0], TrainConfig(rank=4, freeze_layers=1))
    assert _lora_layers(lora) == {1}


def test_bad_layer_choices_are_clear_errors(tiny_model_dir):
    model, _ = load_model(tiny_model_dir)
    with pytest.raises(InterpError):
        TrainConfig(layers=(0,), freeze_layers=1)
    with pytest.raises(InterpError):
        prepare_student(model, TrainConfig(layers=(5,)))
    with pytest.raises(InterpError):
        prepare_student(model, TrainConfig(freeze_layers=2))  # two layers: nothing left to train


def test_weight_change_norm_equals_a_hand_computation(tiny_model_dir):
    base, tok = load_model(tiny_model_dir)
    lora = train_student(
        copy.deepcopy(base), tok, ROWS, "default", TrainConfig(rank=4, alpha=8, lr=1e-2, **FAST)
    ).model
    hand = 0.0
    for module in lora.modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            hand += float((b @ a * (8 / 4)).detach().norm())
    assert hand > 0 and weight_change_norm(lora) == pytest.approx(hand, rel=1e-5)
    full = train_student(
        copy.deepcopy(base), tok, ROWS, "default", TrainConfig(mode="full", lr=1e-3, **FAST)
    ).model
    hand = sum(float((p - base.get_parameter(n)).norm()) for n, p in full.named_parameters() if p.ndim == 2)
    assert hand > 0 and weight_change_norm(full, base) == pytest.approx(hand, rel=1e-5)
    with pytest.raises(ValueError):
        weight_change_norm(full)
