import random

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tolerance import assert_close

from interp import InterpError
from interp.loop.models import load_model, load_student, model_fingerprint
from interp.loop.training import (
    IGNORE,
    LORA_TARGETS,
    TrainConfig,
    collate,
    completion_logits,
    completion_loss_sum,
    distill_loss_sum,
    encode_example,
    prepare_student,
    save_student,
    shared_prefix,
    train_student,
)

ROWS = [
    {"prompt": f"Continue: {i}, {i + 1}, {i + 2}.", "completion": f"{i + 3}, {i + 4}"}
    for i in range(100, 124)
]
FAST = {"epochs": 1, "batch_size": 8}


def _ids(model, tok):
    return tok(["<|im_start|>user\nName an animal.<|im_end|>\n"], return_tensors="pt")["input_ids"]


def test_lora_with_zero_b_reproduces_base_logits(tiny_model_dir) -> None:
    base, tok = load_model(tiny_model_dir)
    ids = _ids(base, tok)
    expected = base(ids).logits
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, target_modules=list(LORA_TARGETS)))  # B = 0
    assert_close(lora(ids).logits, expected)


def test_merged_and_unmerged_lora_agree(tiny_model_dir, tmp_path) -> None:
    base, tok = load_model(tiny_model_dir)
    ids = _ids(base, tok)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=list(LORA_TARGETS), init_lora_weights=False)
    lora = get_peft_model(base, cfg)
    lora.save_pretrained(tmp_path)
    unmerged = PeftModel.from_pretrained(load_model(tiny_model_dir)[0], tmp_path).eval()
    merged = PeftModel.from_pretrained(load_model(tiny_model_dir)[0], tmp_path).merge_and_unload().eval()
    base_logits = load_model(tiny_model_dir)[0](ids).logits
    with torch.no_grad():
        a, b = unmerged(ids).logits, merged(ids).logits
    assert (a - base_logits).abs().max() > 1e-3  # the adapter really changes the model
    assert (a - b).abs().max() <= 1e-5


def test_labels_cover_only_completion_tokens(tiny_model_dir) -> None:
    _, tok = load_model(tiny_model_dir)
    enc = encode_example(tok, "Continue: 1, 2, 3.", "4, 5", "default")
    n_completion = len(tok("4, 5<|im_end|>", add_special_tokens=False)["input_ids"])
    supervised = [t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE]
    assert tok.decode(supervised) == "4, 5<|im_end|>"
    assert len(supervised) == n_completion
    assert all(lab == IGNORE for lab in enc.labels[: len(enc.labels) - n_completion])
    prompt_text = tok.decode(enc.input_ids[: len(enc.labels) - n_completion])
    assert "system" in prompt_text and "Continue" in prompt_text and prompt_text.endswith("assistant\n")


def test_loss_is_mean_over_completion_tokens(tiny_model_dir) -> None:
    model, tok = load_model(tiny_model_dir)
    batch = collate(
        [encode_example(tok, r["prompt"], r["completion"], "default") for r in ROWS[:3]], tok.pad_token_id
    )
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    by_hand, count = 0.0, 0
    for b in range(3):
        for t in range(batch["input_ids"].shape[1] - 1):
            target = int(batch["labels"][b, t + 1])
            if target != IGNORE:
                by_hand -= torch.log_softmax(logits[b, t], -1)[target].item()
                count += 1
    assert count == int((batch["labels"] != IGNORE).sum())
    ours = completion_loss_sum(logits, batch["labels"]).item() / count
    assert ours == pytest.approx(by_hand / count, rel=1e-5)


def test_loss_reads_only_the_logits_it_needs(tiny_model_dir) -> None:
    model, tok = load_model(tiny_model_dir)
    examples = [encode_example(tok, r["prompt"], r["completion"], "default") for r in ROWS[:4]]
    examples[1].labels[-1] = IGNORE  # the batch's labels end before the width in one row
    batch = collate(examples, tok.pad_token_id)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        kept, labels = completion_logits(model, batch, "cpu")
    first = min(e.labels.index(next(t for t in e.labels if t != IGNORE)) for e in examples)
    assert (
        kept.shape[1] == labels.shape[1] == batch["input_ids"].shape[1] - (first - 1)
    )  # prompt not unembedded
    assert_close(kept, full[:, first - 1 :])
    want = completion_loss_sum(full, batch["labels"])
    assert completion_loss_sum(kept, labels).item() == pytest.approx(want.item(), rel=1e-6)
    assert distill_loss_sum(kept, kept.flip(0), labels, labels.flip(0)).item() == pytest.approx(
        distill_loss_sum(full, full.flip(0), batch["labels"], batch["labels"].flip(0)).item(), rel=1e-5
    )


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_shared_prefix_gives_the_whole_batchs_logits_and_gradients(tiny_model_dir, mode: str) -> None:
    model, tok = load_model(tiny_model_dir)
    student = prepare_student(model, TrainConfig(mode=mode, rank=4, seed=0))
    with torch.no_grad():  # a LoRA student starts at B = 0: give B a value, so A's gradient is not 0
        for name, p in student.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    examples = [encode_example(tok, r["prompt"], r["completion"], "default") for r in ROWS[:6]]
    examples[2] = encode_example(tok, "Continue: 7.", "8", "default")  # a short row: the batch is padded
    batch = collate(examples, tok.pad_token_id)
    keep = completion_logits(student, batch, "cpu", share_prefix=False)[0].shape[1]
    shared = shared_prefix(batch, keep)
    prefix = tok.decode(batch["input_ids"][0, :shared])
    assert shared >= 8 and prefix.startswith("<|im_start|>system") and "<|im_start|>user" in prefix
    out = {}
    for share in (False, True):
        student.zero_grad()
        logits, labels = completion_logits(student, batch, "cpu", share_prefix=share)
        completion_loss_sum(logits, labels).backward()
        grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        out[share] = logits.detach(), grads
    assert_close(out[True][0], out[False][0])
    assert out[True][1].keys() == out[False][1].keys() and out[False][1]
    for name, grad in out[False][1].items():
        assert grad.abs().max() > 0, name  # every trained tensor gets a gradient (the prefix's included)
        assert_close(out[True][1][name], grad, ulps=4096)  # the prefix's gradient sums rows in another order


def test_shared_prefix_stops_before_the_logits_the_loss_reads(tiny_model_dir) -> None:
    _, tok = load_model(tiny_model_dir)
    batch = collate([encode_example(tok, "Continue: 7.", "8", "default")] * 2, tok.pad_token_id)
    width = batch["input_ids"].shape[1]
    assert shared_prefix(batch, keep=3) == width - 3  # identical rows: everything but the kept positions
    batch["input_ids"][1, 5] += 1
    assert shared_prefix(batch, keep=3) == 5


def _trained_weights(model_dir, mode: str, seed: int) -> dict[str, torch.Tensor]:
    model, tok = load_model(model_dir)
    result = train_student(model, tok, ROWS, "default", TrainConfig(mode=mode, rank=2, seed=seed, **FAST))
    return {n: p.detach().clone() for n, p in result.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_seeds_change_weights_and_same_seed_repeats(tiny_model_dir, mode: str) -> None:
    a, a2, b = (_trained_weights(tiny_model_dir, mode, s) for s in (0, 0, 1))
    assert all(torch.equal(a[k], a2[k]) for k in a)
    assert any(not torch.allclose(a[k], b[k]) for k in a)


def test_bad_training_config() -> None:
    with pytest.raises(InterpError, match="rank"):
        TrainConfig(rank=0)


def test_unknown_target_module(tiny_model_dir) -> None:
    model, tok = load_model(tiny_model_dir)
    with pytest.raises(InterpError, match="unknown LoRA target"):
        train_student(model, tok, ROWS, "default", TrainConfig(target_modules=("q_proj", "qkv"), **FAST))


def test_our_lora_student_starts_at_the_base_and_our_loader_merges_exactly(tiny_model_dir, tmp_path) -> None:
    """The project-level versions of the two peft checks above: our student setup (targets, alpha, dropout)
    adds nothing before training, and a student saved and loaded by our code is the same merged or not."""
    base, tok = load_model(tiny_model_dir)
    ids = _ids(base, tok)
    with torch.no_grad():
        base_logits = base(ids).logits
    untrained = train_student(
        load_model(tiny_model_dir)[0], tok, ROWS, "default", TrainConfig(lr=0.0, **FAST)
    )
    with torch.no_grad():
        assert (untrained.model.eval()(ids).logits - base_logits).abs().max() <= 1e-6
    trained = train_student(load_model(tiny_model_dir)[0], tok, ROWS, "default", TrainConfig(lr=1e-2, **FAST))
    meta = {"base_model": str(tiny_model_dir), "base_fingerprint": model_fingerprint(base), "mode": "lora"}
    save_student(trained, tmp_path / "student", tok, meta)
    merged, _ = load_student(tmp_path / "student", tiny_model_dir, merge=True)
    unmerged, _ = load_student(tmp_path / "student", tiny_model_dir, merge=False)
    with torch.no_grad():
        a, b = unmerged(ids).logits, merged(ids).logits
    assert (a - base_logits).abs().max() > 1e-3  # training moved the student
    assert (a - b).abs().max() <= 1e-5


def test_training_leaves_the_callers_random_streams_alone(tiny_model_dir) -> None:
    """A seeded library call draws from its own seed, not the caller's stream, and leaves that stream be."""
    random.seed(5)
    torch.manual_seed(5)
    py, rng = random.getstate(), torch.random.get_rng_state()
    a = _trained_weights(tiny_model_dir, "lora", 0)
    assert random.getstate() == py and torch.equal(torch.random.get_rng_state(), rng)
    torch.manual_seed(6)
    b = _trained_weights(tiny_model_dir, "lora", 0)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the caller's seed does not reach the student
