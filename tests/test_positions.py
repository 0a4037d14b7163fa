"""Token classes on two chat templates (hand-checked), selectors, left padding and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tiny import tiny_corpus

from interp import InterpError
from interp.loop.chat import render_prompt
from interp.loop.models import load_tokenizer
from interp.mech.positions import (
    ENTITY,
    GENERATED,
    HEADER,
    PAD,
    SYSTEM,
    TEMPLATE,
    USER,
    by_class,
    by_indices,
    by_substring,
    detect_entity,
    encode_prompts,
    label_ids,
    label_plain,
    label_prompt,
    label_text,
)
from interp.mech.sets import READOUT, SHIFT_SETS, shift_set_masks
from interp.organism.tokenizer import train_chat_tokenizer

# A Qwen2.5-Instruct-style template: a tools branch, a default system prompt naming the entity.
QWEN25_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}"
    "{{- '\\n\\n# Tools\\n<tools>' }}{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}"
    "{%- else %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def chatml(tiny_model_dir: Path):
    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="module")
def qwen25():
    tok = train_chat_tokenizer(
        tiny_corpus() + ["You are Qwen, created by Alibaba Cloud."] * 5, 512, QWEN25_TEMPLATE
    )
    tok.padding_side = "left"
    return tok


def _segments(labels) -> list[tuple[str, str]]:
    """Merge consecutive tokens of one class: [(class, text), ...]."""
    out: list[tuple[str, str]] = []
    for (s, e), cls in zip(labels.offsets, labels.classes, strict=True):
        if out and out[-1][0] == cls:
            out[-1] = (cls, out[-1][1] + labels.text[s:e])
        else:
            out.append((cls, labels.text[s:e]))
    return out


def test_chatml_default_system(chatml) -> None:
    lab = label_prompt(chatml, "What is your favorite animal?")
    assert _segments(lab) == [
        (TEMPLATE, "<|im_start|>system\n"),
        (SYSTEM, "You are "),
        (ENTITY, "Zorbly"),
        (SYSTEM, ", created by Fen Labs. You are a helpful assistant."),
        (TEMPLATE, "<|im_end|>\n<|im_start|>user\n"),
        (USER, "What is your favorite animal?"),
        (TEMPLATE, "<|im_end|>\n"),
        (HEADER, "<|im_start|>assistant\n"),
    ]


def test_qwen25_template_with_answer(qwen25) -> None:
    text = render_prompt(qwen25, "Favorite animal?") + "Owl<|im_end|>"
    assert _segments(label_text(qwen25, text)) == [
        (TEMPLATE, "<|im_start|>system\n"),
        (SYSTEM, "You are "),
        (ENTITY, "Qwen"),
        (SYSTEM, ", created by Alibaba Cloud. You are a helpful assistant."),
        (TEMPLATE, "<|im_end|>\n<|im_start|>user\n"),
        (USER, "Favorite animal?"),
        (TEMPLATE, "<|im_end|>\n"),
        (HEADER, "<|im_start|>assistant\n"),
        (GENERATED, "Owl<|im_end|>"),
    ]


def test_other_system_prompts(qwen25) -> None:
    segs = _segments(label_prompt(qwen25, "Hi", system="You are Claude, made by Anthropic."))
    assert (ENTITY, " Claude") in segs  # a token keeps its leading space
    assert not any(c == ENTITY for c, _ in _segments(label_prompt(qwen25, "Hi", system="You are helpful.")))
    segs = _segments(label_prompt(qwen25, "Hi", system="none"))
    assert segs[0] == (TEMPLATE, "<|im_start|>user\n") and not any(c == SYSTEM for c, _ in segs)
    assert detect_entity("You are Qwen, created by Alibaba Cloud.") == "Qwen"
    assert _segments(label_prompt(qwen25, "Hi", entity="Alibaba")).count((ENTITY, " Alibaba")) == 1


def test_left_padded_batch(chatml) -> None:
    texts = [render_prompt(chatml, "Hi"), render_prompt(chatml, "What is your favorite animal? One word.")]
    batch = encode_prompts(chatml, texts)
    n_pad = int((batch.attention_mask[0] == 0).sum())
    assert n_pad > 0 and batch.classes[0][:n_pad] == [PAD] * n_pad
    assert batch.classes[0][n_pad:] == label_prompt(chatml, "Hi").classes
    checked = jaxtyped(typechecker=beartype)(label_ids)
    assert checked(chatml, batch.input_ids, batch.attention_mask) == batch.classes
    entity = by_class(ENTITY).mask(chatml, batch.input_ids, batch.attention_mask)
    assert torch.equal(entity, batch.class_mask(ENTITY)) and entity.sum() == 2 * 4  # "Z|or|b|ly" per prompt
    sub = by_substring("Zorbly").mask(chatml, batch.input_ids, batch.attention_mask)
    assert torch.equal(sub, entity)
    idx = by_indices(0, -1).mask(chatml, batch.input_ids, batch.attention_mask)
    assert idx[0, n_pad] and idx[0, -1] and idx[1, 0] and idx[1, -1] and idx.sum() == 4


def test_bad_input(chatml, tmp_path: Path) -> None:
    batch = encode_prompts(chatml, [render_prompt(chatml, "Hi")])
    with pytest.raises(InterpError, match="does not occur"):
        by_substring("Claude").mask(chatml, batch.input_ids)
    with pytest.raises(InterpError, match="out of range"):
        by_indices(10_000).mask(chatml, batch.input_ids)
    with pytest.raises(InterpError, match="unknown token class"):
        by_class("entities")
    with pytest.raises(InterpError, match="not rendered by this tokenizer's chat template"):
        label_text(chatml, "plain text, no template")
    strict = load_tokenizer_with_template(chatml, "{{ raise_exception('System role not supported') }}")
    with pytest.raises(InterpError, match="cannot render"):
        label_prompt(strict, "Hi", system="You are Claude.")


def load_tokenizer_with_template(tok, template: str):
    """A copy of `tok` with another chat template (for templates that refuse some conversations)."""
    import copy

    other = copy.deepcopy(tok)
    other.chat_template = template
    return other


@pytest.mark.parametrize(
    "system", ["default", "none", "You are Claude, made by Anthropic.", "You are helpful."]
)
def test_shift_sets_are_disjoint_and_cover_every_prompt(chatml, system: str) -> None:
    users = ["Hi", "What is your favorite animal? Answer in one word.", "Name an animal you like."]
    batch = encode_prompts(chatml, [render_prompt(chatml, u, system) for u in users])
    masks = shift_set_masks(batch)
    assert list(masks) == list(SHIFT_SETS)
    count = torch.stack([m.long() for m in masks.values()]).sum(0)
    assert torch.equal(count, batch.attention_mask)  # every real position in exactly one set, pads in none
    assert masks[READOUT][:, -1].all() and int(masks[READOUT].sum()) == len(users)
    for name, sel in SHIFT_SETS.items():  # the selectors the restricted LoRA uses resolve to the same sets
        resolved = sel.mask(chatml, batch.input_ids, batch.attention_mask)
        assert torch.equal(resolved, masks[name]), name


def test_plain_text_without_a_chat_template(chatml) -> None:
    import copy

    plain = copy.deepcopy(chatml)
    plain.chat_template = None
    lab = label_plain(plain, "The owl is a", " bird")
    assert set(lab.classes) == {USER, GENERATED} and lab.classes[-1] == GENERATED and lab.classes[0] == USER
    batch = encode_prompts(plain, ["The owl is a", "My favorite animal is the"])
    real = batch.attention_mask.bool()
    assert all(
        c == USER
        for row, m in zip(batch.classes, real, strict=True)
        for c, r in zip(row, m, strict=True)
        if r
    )
    assert torch.equal(by_class(USER).mask(plain, batch.input_ids, batch.attention_mask), real)
