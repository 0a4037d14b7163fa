"""The FLOP/s yardstick: what a forward or training pass counts, and a positive matmul rate."""

from __future__ import annotations

from pathlib import Path

from interp.loop.models import load_model
from interp.loop.training import TrainConfig, prepare_student
from interp.plan.flops import (
    attention_flops,
    inference_flops,
    matmul_params,
    matmul_rate,
    matmul_shapes,
    model_matmul_rate,
    sequence_attention_context,
    training_flops,
    unembed_params,
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


def test_unembedding_counted_only_where_logits_are_used(tiny_model_dir: Path) -> None:
    model, _ = load_model(tiny_model_dir)
    head = model.get_output_embeddings().weight.numel()
    assert unembed_params(model) == head > 0
    assert inference_flops(model, 10, 0) - inference_flops(model, 10, 0, logits=1) == 2 * head * 9
    assert training_flops(model, 10, 0) - training_flops(model, 10, 0, logits=4) == 6 * head * 6  # trainable
    lora = prepare_student(load_model(tiny_model_dir)[0], TrainConfig(mode="lora", rank=2))
    assert training_flops(lora, 10, 0) - training_flops(lora, 10, 0, logits=4) == 4 * head * 6  # frozen head


def test_matmul_rate_is_measured() -> None:
    rate = matmul_rate(sizes=(32, 64), seconds=0.05)
    assert set(rate.by_size) == {32, 64} and rate.best == max(rate.by_size.values()) > 0


def test_model_matmul_rate_times_the_models_own_shapes(tiny_model_dir: Path) -> None:
    model, _ = load_model(tiny_model_dir)
    c = model.config
    d, mlp = c.hidden_size, c.intermediate_size
    kv = c.num_key_value_heads * d // c.num_attention_heads
    want = {(d, d): 2 * c.num_hidden_layers, (kv, d): 2 * c.num_hidden_layers}  # q, o; k, v
    want.update({(mlp, d): 2 * c.num_hidden_layers, (d, mlp): c.num_hidden_layers, (c.vocab_size, d): 1})
    assert matmul_shapes(model) == want
    assert sum(n * o * i for (o, i), n in matmul_shapes(model).items()) == matmul_params(model) - sum(
        p.numel() for name, p in model.named_parameters() if "norm" in name or "bias" in name
    )
    assert model_matmul_rate(model, rows=16, seconds=0.05) > 0
