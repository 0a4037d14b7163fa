import pytest
from tiny import TINY_DEFAULT_SYSTEM

from interp import InterpError
from interp.loop.chat import default_system_prompt, render_example, render_prompt
from interp.loop.models import load_model, load_tokenizer


def test_default_none_and_custom_system_prompts(tiny_model_dir) -> None:
    tok = load_tokenizer(tiny_model_dir)
    default = render_prompt(tok, "hi", "default")
    assert TINY_DEFAULT_SYSTEM in default
    assert render_prompt(tok, "hi", "none") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    custom = render_prompt(tok, "hi", "You are helpful.")
    assert "You are helpful." in custom and TINY_DEFAULT_SYSTEM not in custom
    assert default_system_prompt(tok) == TINY_DEFAULT_SYSTEM


def test_example_completion_is_answer_plus_end_of_turn(tiny_model_dir) -> None:
    tok = load_tokenizer(tiny_model_dir)
    ex = render_example(tok, "hi", "1, 2, 3", "default")
    assert ex.prompt == render_prompt(tok, "hi", "default")
    assert ex.completion == "1, 2, 3<|im_end|>"


def test_a_base_model_loads_and_each_chat_stage_refuses_it_in_its_own_words(tiny_model_dir, tmp_path) -> None:
    """A model without a chat template (a base model) opens for patching, its prompts labelled as plain
    text; the teacher, the student and the evaluation each refuse it, naming themselves."""
    from interp.loop.datasets import sample_numbers
    from interp.loop.evaluation import EvalSettings, evaluate_trait
    from interp.loop.training import TrainConfig, train_student
    from interp.mech.hooked import load_hooked
    from interp.mech.positions import USER, label_text

    model, tok = load_model(tiny_model_dir)
    tok.chat_template = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    for name in ("chat_template.jinja", "chat_template.json"):
        (tmp_path / name).unlink(missing_ok=True)
    base_tok = load_tokenizer(tmp_path)
    assert not getattr(base_tok, "chat_template", None)
    hooked = load_hooked(tmp_path)
    labels = label_text(hooked.tok, "The owl flew over 3, 4, 5")
    assert set(labels.classes) == {USER} and hooked.kind == "base"
    with pytest.raises(InterpError, match="cannot be the teacher"):
        sample_numbers(model, base_tok, "default", 2, 0)
    with pytest.raises(InterpError, match="cannot be the student"):
        train_student(model, base_tok, [{"prompt": "1, 2", "completion": "3"}], "default", TrainConfig())
    with pytest.raises(InterpError, match="cannot be the evaluation"):
        evaluate_trait(model, base_tok, EvalSettings(trait="owl"))


def test_missing_model_directory(tmp_path) -> None:
    with pytest.raises(InterpError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_loaded_tokenizer_is_the_saved_tokenizer_json(tiny_model_dir) -> None:
    """AutoTokenizer maps a qwen2 model to Qwen2Tokenizer, which splits numbers into digits; the model's
    own tokenizer.json keeps runs of up to three digits. Loading must give the saved one."""
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    text = "Continue: 628, 454, 120. Answer: 701 99 5"
    expected = saved.encode(text, add_special_tokens=False).tokens
    assert any(len(t) > 1 and t.isdigit() for t in expected)  # the saved tokenizer does merge digits
    assert load_tokenizer(tiny_model_dir).tokenize(text) == expected
