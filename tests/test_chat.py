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


def test_model_without_chat_template_is_rejected(tiny_model_dir, tmp_path) -> None:
    model, tok = load_model(tiny_model_dir)
    tok.chat_template = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    for name in ("chat_template.jinja", "chat_template.json"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(InterpError, match="chat template"):
        load_tokenizer(tmp_path)


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
