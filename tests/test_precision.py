"""Training precision: fp32 master weights keep an update that pure bf16 rounds away; dtypes of weights,
optimizer states and activations under each precision; gradient checkpointing changes memory, not results."""

from __future__ import annotations

import pytest
import torch

from interp import InterpError
from interp.loop.models import load_model
from interp.loop.precision import grad_checkpointing_on, prepare_precision, resolve_precision
from interp.loop.training import TrainConfig, prepare_student, train_student
from interp.study.experiment import StudentSpec, StudyConfig
from interp.study.jobs import student_job

ROWS = [{"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}"} for i in range(100, 108)]
ONE_STEP = {"epochs": 1, "batch_size": 8, "max_grad_norm": 1e9}


def _final_norm(model) -> torch.Tensor:
    return (
        model.get_base_model().model.norm.weight
        if hasattr(model, "get_base_model")
        else model.model.norm.weight
    )


@pytest.mark.parametrize(("precision", "moves"), [("bf16-pure", False), ("bf16-mixed", True), ("fp32", True)])
def test_an_update_below_bf16_resolution_survives_only_with_fp32_master_weights(
    tiny_model_dir, precision: str, moves: bool
) -> None:
    model, tok = load_model(tiny_model_dir)
    assert bool((model.model.norm.weight == 1.0).all())  # RMSNorm gains start at exactly 1
    # one AdamW step of lr 1e-4 moves every weight by ~1e-4; bf16's spacing just below 1.0 is 2**-8
    cfg = TrainConfig(mode="full", lr=1e-4, precision=precision, **ONE_STEP)
    student = train_student(model, tok, ROWS, "default", cfg).model
    gain = _final_norm(student)
    assert gain.dtype == torch.float32  # back in the dtype it was loaded in
    changed = float((gain != 1.0).float().mean())
    assert (changed > 0.9) if moves else (changed == 0.0)
    embed = student.get_input_embeddings().weight
    assert not torch.equal(embed, load_model(tiny_model_dir)[0].get_input_embeddings().weight)  # a step ran


def test_bf16_mixed_keeps_fp32_master_weights_and_optimizer_states(tiny_model_dir) -> None:
    model, _ = load_model(tiny_model_dir, dtype="bfloat16")
    student = prepare_student(model, TrainConfig(mode="full"))
    numerics = prepare_precision(student, TrainConfig(mode="full"))  # auto on a bf16 model
    assert numerics.precision == "bf16-mixed" and numerics.loaded == torch.bfloat16
    assert {p.dtype for p in student.parameters()} == {torch.float32}
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    ids = torch.tensor([[5, 6, 7, 8]])
    with numerics.autocast():
        logits = student(input_ids=ids).logits
    assert logits.dtype == torch.bfloat16  # the forward pass computes in bf16
    logits.float().sum().backward()
    opt.step()
    states = [t for s in opt.state.values() for t in s.values() if t.dim() > 0]
    assert states and {t.dtype for t in states} == {torch.float32}
    numerics.restore(student)
    assert {p.dtype for p in student.parameters()} == {torch.bfloat16}


def test_pure_bf16_trains_in_bf16_and_lora_adapters_stay_fp32_by_default(tiny_model_dir) -> None:
    model, _ = load_model(tiny_model_dir)
    pure = prepare_precision(
        prepare_student(model, TrainConfig(mode="full")), TrainConfig(precision="bf16-pure")
    )
    assert pure.precision == "bf16-pure" and {p.dtype for p in model.parameters()} == {torch.bfloat16}
    base, _ = load_model(tiny_model_dir, dtype="bfloat16")
    lora = prepare_student(base, TrainConfig(mode="lora", rank=4))
    prepare_precision(lora, TrainConfig(mode="lora"))
    trainable = {p.dtype for p in lora.parameters() if p.requires_grad}
    frozen = {p.dtype for p in lora.parameters() if not p.requires_grad}
    assert trainable == {torch.float32} and frozen == {torch.bfloat16}


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_grad_checkpointing_gives_the_same_student(tiny_model_dir, mode: str) -> None:
    students = []
    for ckpt in (False, True):
        model, tok = load_model(tiny_model_dir)
        cfg = TrainConfig(mode=mode, rank=4, lr=1e-3, grad_checkpointing=ckpt, epochs=1, batch_size=4)
        result = train_student(model, tok, ROWS, "default", cfg)
        assert grad_checkpointing_on(result.model) == ckpt
        students.append({k: v.detach() for k, v in result.model.named_parameters()})
    plain, ckpt = students
    assert max(float((plain[k] - ckpt[k]).abs().max()) for k in plain) < 1e-5


def test_auto_and_unknown_precisions() -> None:
    assert resolve_precision("auto", torch.bfloat16) == "bf16-mixed"
    assert resolve_precision("auto", torch.float32) == "fp32"
    assert resolve_precision("auto", torch.float16) == "fp32"
    with pytest.raises(InterpError, match="unknown precision"):
        resolve_precision("fp8", torch.float32)


def test_study_jobs_record_precision_only_when_set(tiny_model_dir) -> None:
    plain = student_job(
        StudyConfig(model=str(tiny_model_dir)), StudentSpec(), "trait", 0, 0, {"default": "default"}
    )
    assert "precision" not in plain.params["train"] and "grad_checkpointing" not in plain.params["train"]
    cfg = StudyConfig(model=str(tiny_model_dir), precision="bf16-pure", grad_checkpointing=True)
    pure = student_job(cfg, StudentSpec(), "trait", 0, 0, {"default": "default"})
    assert pure.params["train"]["precision"] == "bf16-pure" and pure.params["train"]["grad_checkpointing"]
    assert pure.name != plain.name  # a different student, a different job
    TrainConfig(**pure.params["train"])  # the runner builds its TrainConfig from these
