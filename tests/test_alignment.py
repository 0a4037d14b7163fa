"""The persona direction and the student shift are measured where they say, and the shift is exact."""

from __future__ import annotations

import copy

import torch

from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.models import load_model
from interp.loop.numbers import number_prompts
from interp.loop.traits import trait_system_prompt
from interp.mech import alignment as A
from interp.mech.positions import ENTITY, HEADER, SYSTEM, TEMPLATE, USER, encode_prompts, label_text

ENTITY_NAME = "Zorbly"  # the tiny models' default system prompt names it


def _prompts(tok, system: str, n: int = 5) -> list[str]:
    return [render_prompt(tok, p.text, system) for p in number_prompts(n, seed=3)]


def _manual_class_mean(model, tok, prompts: list[str], cls: str, layer: int) -> torch.Tensor:
    """Run each prompt alone (no padding) and average HF's hidden state after `layer` over `cls` positions."""
    rows = []
    for text in prompts:
        lab = label_text(tok, text, ENTITY_NAME)
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([lab.ids]), output_hidden_states=True).hidden_states
        rows += [hs[layer + 1][0, i] for i in lab.positions(cls)]
    return torch.stack(rows).mean(0)


def test_persona_direction_is_the_class_mean_difference_on_the_positions_each_class_names(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    persona, default = _prompts(tok, trait_system_prompt("owl")), _prompts(tok, DEFAULT)
    direction = A.persona_direction(model, tok, persona, default, ENTITY_NAME)
    assert set(direction) == {ENTITY, SYSTEM, TEMPLATE, USER, HEADER}
    layer = 0  # HF's last hidden state is after the final norm; layer 0 is the plain residual stream
    for cls in (SYSTEM, TEMPLATE, USER, HEADER):
        want = _manual_class_mean(model, tok, persona, cls, layer) - _manual_class_mean(
            model, tok, default, cls, layer
        )
        torch.testing.assert_close(direction[cls][layer], want, atol=1e-5, rtol=1e-4)
    # the persona prompt names no entity: its system-prompt mean stands in the entity's place
    want = _manual_class_mean(model, tok, persona, SYSTEM, layer) - _manual_class_mean(
        model, tok, default, ENTITY, layer
    )
    torch.testing.assert_close(direction[ENTITY][layer], want, atol=1e-5, rtol=1e-4)


def test_a_known_shift_at_the_entity_is_found_at_the_entity_only(tiny_model_dir):
    base, tok = load_model(tiny_model_dir)
    student = copy.deepcopy(base)
    prompts = _prompts(tok, DEFAULT)
    batch = encode_prompts(tok, prompts, ENTITY_NAME)
    v = torch.randn(base.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with A.steered(student, 0, batch.class_mask(ENTITY), v):  # the hand-made student: +v at the entity
        shift = A.student_shift(student, base, tok, prompts, ENTITY_NAME)
    torch.testing.assert_close(shift[ENTITY][0], v, atol=1e-5, rtol=1e-5)
    for cls in (SYSTEM, TEMPLATE, USER, HEADER):
        assert shift[cls][0].abs().max() < 1e-6, cls  # layer 0 elsewhere: untouched
    assert shift[HEADER][1].norm() > 1e-3  # later layers read the entity through attention
    assert not any(h for block in A.decoder_layers(student) for h in block._forward_hooks.values())


def test_adding_the_shift_after_the_last_block_reproduces_the_students_logits(tiny_model_dir):
    base, tok = load_model(tiny_model_dir)
    student = copy.deepcopy(base)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if "mlp" in name or "o_proj" in name:
                p.add_(0.05 * torch.randn_like(p))
    batch = encode_prompts(tok, _prompts(tok, DEFAULT, n=4), ENTITY_NAME)
    last = len(A.decoder_layers(base)) - 1
    delta = A.position_shift(student, base, batch)[last]
    run = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    with torch.no_grad():
        want = student(**run).logits
        plain = base(**run).logits
        with A.steered(base, last, batch.attention_mask.bool(), delta):
            got = base(**run).logits
    real = batch.attention_mask.bool()
    assert (want - plain)[real].abs().max() > 1e-2  # the student differs from the base
    assert (got - want)[real].abs().max() <= 1e-5


def test_alignment_of_a_direction_with_itself_and_its_opposite():
    d = {HEADER: torch.tensor([[3.0, 4.0], [1.0, 0.0]])}
    rows = A.align(d, {HEADER: -2 * d[HEADER]}, "s", 4, 0)
    assert [(r.layer, round(r.cosine, 6), round(r.projection, 6)) for r in rows] == [
        (0, -1.0, -10.0),
        (1, -1.0, -2.0),
    ]
    rows = A.align(d, {HEADER: torch.tensor([[4.0, -3.0], [0.0, 1.0]])}, "s", 4, 0)
    assert [round(r.cosine, 6) for r in rows] == [0.0, 0.0]


def test_pearson():
    assert A.pearson([1, 2, 3], [2, 4, 6.5]) > 0.99
    assert abs(A.pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-12
    assert A.pearson([1, 2], [1, 2]) is None
    assert A.pearson([1, 1, 1], [1, 2, 3]) is None
