"""The organism's probes measure what they name: residuals at the header, steering that is removed, KL."""

from __future__ import annotations

import torch

from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.models import load_model
from interp.loop.training import TrainConfig, train_student
from interp.organism import probes


def test_last_position_reads_the_residual_after_each_block_at_the_last_prompt_token(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    prompts = [render_prompt(tok, "Hi there", DEFAULT), render_prompt(tok, "What is your favorite animal?")]
    probs, resid = probes.last_position(model, tok, prompts)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    assert len(resid) == model.config.num_hidden_layers
    for layer in range(len(resid) - 1):  # HF's last hidden state is after the final norm: compare the rest
        torch.testing.assert_close(resid[layer], out.hidden_states[layer + 1][:, -1])
    torch.testing.assert_close(probs, out.logits[:, -1].softmax(-1))


def test_steering_adds_at_the_last_position_only_and_the_hook_is_removed(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    prompts = [render_prompt(tok, "Name an animal.", DEFAULT)]
    base, _ = probes.last_position(model, tok, prompts)
    zero = probes.steered_probs(model, tok, prompts, 0, torch.zeros(model.config.hidden_size))
    torch.testing.assert_close(zero, base)
    moved = probes.steered_probs(model, tok, prompts, 1, 5 * torch.ones(model.config.hidden_size))
    assert (moved - base).abs().max() > 1e-3
    after, _ = probes.last_position(model, tok, prompts)  # no hook left behind
    torch.testing.assert_close(after, base)


def test_kl_is_zero_for_equal_and_positive_for_different_distributions():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    assert probes._kl(p, p) == 0.0
    q = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    expected = float((p * (p / q).log()).sum(-1).mean())
    assert abs(probes._kl(p, q) - expected) < 1e-6


def test_persona_direction_is_persona_minus_default_mean():
    d = torch.zeros(3, 4)
    p = torch.arange(12.0).reshape(3, 4)
    passes = {"default": (None, [d, d + 1]), "owl": (None, [p, p])}
    dirs = probes.persona_directions(passes, "owl")
    torch.testing.assert_close(dirs[0], p.mean(0))
    torch.testing.assert_close(dirs[1], p.mean(0) - 1)


def test_on_step_callback_sees_every_step_and_leaves_training_unchanged(tiny_model_dir):
    rows = [{"prompt": "Give numbers.", "completion": "1, 2, 3"}] * 8
    cfg = TrainConfig(mode="lora", rank=2, lr=1e-2, epochs=2, batch_size=4, seed=0)
    seen = []
    model, tok = load_model(tiny_model_dir)
    a = train_student(model, tok, rows, DEFAULT, cfg, on_step=lambda s, m: seen.append((s, m.training)))
    model2, _ = load_model(tiny_model_dir)
    b = train_student(model2, tok, rows, DEFAULT, cfg)
    assert [s for s, _ in seen] == [0, 1, 2, 3, 4] and all(t for _, t in seen)
    assert a.final_loss == b.final_loss


def test_filter_pass_is_seeded_and_leaves_weights_and_global_rng_alone(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    a = probes.filter_pass(model, tok, seed=3)
    assert torch.equal(rng, torch.random.get_rng_state())  # the build's training stream is not perturbed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert a == probes.filter_pass(model, tok, seed=3)
    assert set(a) == {"default", *probes.W.ANIMALS} and all(0.0 <= v <= 1.0 for v in a.values())
