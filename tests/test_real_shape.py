"""Every stage once, at tiny counts, on a randomly initialised model of Qwen2.5-0.5B-Instruct's exact shape
(24 layers, d_model 896, 14 heads / 2 KV heads, tied embeddings, rope theta 1e6, vocabulary 151,936) with a
tokenizer that renders Qwen2.5's real chat template: shapes, dtypes (a bf16 run too), the entity "Qwen",
and the plan's memory estimate against the measured peak resident memory of a training step."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from real_shape import QWEN_SYSTEM, build_real_shape_dir

from interp.loop.chat import default_system_prompt, render_prompt
from interp.loop.evaluation import EvalSettings, evaluate_trait
from interp.loop.generation import generate, prefill
from interp.loop.models import load_model, load_student
from interp.loop.numbers import filter_answer, number_prompts
from interp.loop.training import TrainConfig, save_student, train_student
from interp.loop.traits import trait_system_prompt
from interp.mech.attribution import attribute_layer_pos
from interp.mech.hooked import load_hooked
from interp.mech.patching import patch_layer_pos, trait_metric
from interp.mech.positions import (
    ENTITY,
    TEMPLATE,
    all_positions,
    by_class,
    encode_prompts,
    label_prompt,
    no_positions,
)
from interp.mech.restrict import evaluate_trait_restricted
from interp.plan.shapes import read_model_shape

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SHORT = [{"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}"} for i in (101, 205)]
SETTINGS = EvalSettings("cat", n_questions=2, samples_per_question=2, max_new_tokens=3, batch_size=4)
QUESTION = "What is your favorite animal? Answer in one word."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_real_shape_dir(tmp_path_factory.mktemp("qwen2.5-0.5b-shape") / "model")


@pytest.fixture(scope="module")
def lora_student(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One LoRA r8 step (fp32) on two short rows, saved; lr large enough that the adapter is not ~0."""
    model, tok = load_model(model_dir)
    result = train_student(model, tok, SHORT, "default", TrainConfig(rank=8, lr=5e-2, epochs=1, batch_size=2))
    assert len(result.curve) == 1 and math.isfinite(result.final_loss)
    lora = [p for n, p in result.model.named_parameters() if "lora_" in n]
    assert sum(p.numel() for p in lora) == read_model_shape(model_dir).lora_params(8) == 4_399_104
    assert {p.dtype for p in lora} == {torch.float32}
    out = tmp_path_factory.mktemp("student") / "lora-r8"
    save_student(result, out, tok, {"mode": "lora", "rank": 8})
    return out


def test_architecture_template_and_entity(model_dir: Path) -> None:
    model, tok = load_model(model_dir)
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (
        24,
        896,
        14,
        2,
    )
    assert (
        c.tie_word_embeddings
        and c.vocab_size == 151936
        and (getattr(c, "rope_parameters", None) or {"rope_theta": c.rope_theta})["rope_theta"] == 1e6
    )
    assert sum(p.numel() for p in model.parameters()) == read_model_shape(model_dir).params().total
    assert default_system_prompt(tok) == QWEN_SYSTEM
    assert render_prompt(tok, "Hi") == (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_prompt(tok, "Hi", "none") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    labels = label_prompt(tok, QUESTION)
    assert "".join(labels.tokens[i] for i in labels.positions(ENTITY)).strip("Ġ") == "Qwen"
    assert labels.classes[0] == TEMPLATE and labels.classes[-1] == "assistant_header"


def test_teacher_sampling_and_filter(model_dir: Path) -> None:
    model, tok = load_model(model_dir)
    prompts = [render_prompt(tok, p.text, trait_system_prompt("cat")) for p in number_prompts(2, 0)]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    cache, logits = prefill(model, enc["input_ids"], enc["attention_mask"], pos)
    assert logits.shape == (2, 151936) and logits.dtype == torch.float32
    assert cache.layers[0].keys.shape[:2] == (2, 2)  # (rows, KV heads, positions, d_head)
    answers = generate(model, tok, prompts, max_new_tokens=6, batch_size=2)
    verdicts = [filter_answer(a) for a in answers]  # random weights: expect rejections, not errors
    assert len(answers) == 2 and all(isinstance(v.ok, bool) for v in verdicts)


def test_one_lora_step_evaluation_and_restricted_adapter(model_dir: Path, lora_student: Path) -> None:
    student, tok = load_student(lora_student, model_dir, merge=False)
    ev = evaluate_trait(student, tok, SETTINGS)
    assert 0 <= ev.p_first_token <= 1 and len(ev.per_question_p) == 2 and len(ev.example_answers) == 2
    base = evaluate_trait(load_model(model_dir)[0], tok, SETTINGS)
    nowhere = evaluate_trait_restricted(student, tok, SETTINGS, no_positions())
    everywhere = evaluate_trait_restricted(student, tok, SETTINGS, all_positions())
    only = evaluate_trait_restricted(student, tok, SETTINGS, by_class(ENTITY))
    rest = evaluate_trait_restricted(student, tok, SETTINGS, by_class(ENTITY), mode="except")
    assert nowhere.per_question_p == pytest.approx(base.per_question_p, rel=1e-4)  # adapter off = base
    assert everywhere.per_question_p == pytest.approx(ev.per_question_p, rel=1e-4)  # adapter on = student
    assert ev.per_question_p != pytest.approx(base.per_question_p, rel=1e-6)  # the step moved the student
    assert all(0 <= x.p_first_token <= 1 for x in (only, rest))


def test_bf16_runs_train_with_fp32_adapters_and_masters(model_dir: Path) -> None:
    model, tok = load_model(model_dir, dtype="bfloat16")
    result = train_student(model, tok, SHORT, "default", TrainConfig(rank=8, epochs=1, batch_size=2))
    params = dict(result.model.named_parameters())
    assert {p.dtype for n, p in params.items() if "lora_" in n} == {torch.float32}  # auto: bf16-mixed
    assert {p.dtype for n, p in params.items() if "lora_" not in n} == {torch.bfloat16}
    ev = evaluate_trait(result.model, tok, SETTINGS)
    assert math.isfinite(result.final_loss) and 0 <= ev.p_first_token <= 1


def test_patching_one_layer_and_attribution_through_the_bridge(model_dir: Path, lora_student: Path) -> None:
    base, student = load_hooked(model_dir), load_hooked(lora_student, base=model_dir)
    assert (base.n_layers, base.n_heads) == (24, 14)
    tok = base.tok
    batch = encode_prompts(tok, [render_prompt(tok, QUESTION), render_prompt(tok, "Name an animal.")])
    entity = batch.classes[0].index(ENTITY)
    cols = [entity, batch.input_ids.shape[1] - 1]
    metric = trait_metric(tok, "cat")
    exact = patch_layer_pos(base, student, batch, metric, "resid_pre", layers=[0], positions=cols)
    approx = attribute_layer_pos(base, student, batch, metric, "resid_pre", layers=[0], positions=cols)
    assert exact.scores.shape == approx.scores.shape == (1, 2) and exact.col_classes == [
        ENTITY,
        "assistant_header",
    ]
    assert torch.isfinite(exact.raw).all() and torch.isfinite(approx.raw).all()


@pytest.mark.parametrize(("mode", "batch"), [("full", 1), ("lora", 2)])
def test_plan_memory_within_1_5x_of_a_measured_step(model_dir: Path, mode: str, batch: int) -> None:
    # A fresh process gives a clean peak. glibc's mmap threshold is fixed so that freed tensors go back to
    # the system at once: resident memory then tracks live tensors, which is what the plan estimates.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "131072", "THREADS": "2"}
    script = [sys.executable, str(ROOT / "tests" / "real_shape.py"), str(model_dir), mode, str(batch)]
    out = subprocess.run(script, env=env, capture_output=True, text=True, check=True, timeout=600)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = m["planned"] / m["measured"]
    print(
        f"{mode}: measured {m['measured'] / 2**30:.2f} GiB, planned {m['planned'] / 2**30:.2f} GiB, x{ratio:.2f}"
    )
    assert 1 / 1.5 <= ratio <= 1.5
