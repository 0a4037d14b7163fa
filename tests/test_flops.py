"""The FLOP/s yardstick: what a forward or training pass counts, and a positive matmul rate."""

from __future__ import annotations

from pathlib import Path

from interp.loop.models import load_model
from interp.loop.training import TrainConfig, prepare_student
from interp.study.flops import (
    attention_flops,
    inference_flops,
    matmul_params,
    matmul_rate,
    sequence_attention_context,
    training_flops,
)


def test_counts_follow_the_conventions(tiny_model_dir: Path) -> None:
    model, _ = load_model(tiny_model_dir)
    n = sum(p.numel() for p in model.parameters())
    assert model.config.tie_word_embeddings and matmul_params(model) == n  # tied: the unembedding is a matmul
    assert sequence_attention_context(3) == 6 and sequence_attention_context(2, cached=3) == 4 + 5
    attended = sequence_attention_context(10)
    assert attention_flops(model, 1) == 4 * model.config.num_hidden_layers * model.config.hidden_size
    assert inference_flops(model, 10, attended) == 2 * n * 10 + attention_flops(model, attended)
    assert training_flops(model, 10, attended) == 3 * inference_flops(model, 10, attended)  # all trainable
    lora = prepare_student(load_model(tiny_model_dir)[0], TrainConfig(mode="lora", rank=2))
    ratio = training_flops(lora, 10, 0) / inference_flops(lora, 10, 0)
    assert 2.0 < ratio < 2.2  # activation gradients, and weight gradients for the adapter only


def test_matmul_rate_is_measured() -> None:
    rate = matmul_rate(sizes=(32, 64), seconds=0.05)
    assert set(rate.by_size) == {32, 64} and rate.best == max(rate.by_size.values()) > 0
