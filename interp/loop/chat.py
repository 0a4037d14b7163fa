"""Rendering conversations through a model's own chat template, with the system prompt as a parameter.

A system prompt setting is one of:
  "default" - no system message, so the template inserts the model's default one (Qwen's
              "You are Qwen, created by Alibaba Cloud..."), exactly as at deployment;
  "none"    - no system turn at all, even where the template would insert a default;
  any other string - that text as the system message.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from interp import InterpError

DEFAULT, NONE = "default", "none"
_SENTINEL = "\x1fSYSTEM\x1f"


STAGE_NEEDS = {
    "teacher": "a teacher writes its numbers as a chat answer under a system prompt",
    "student": "a student trains on (user prompt, answer) chat turns under a system prompt",
    "evaluation": "the trait evaluation asks the model its favourite as a chat question",
}


def require_chat(tok: PreTrainedTokenizerBase, stage: str) -> None:
    """Refuse a tokenizer without a chat template at a stage that renders chat turns (a base model loads
    for patching plain text, but cannot be a teacher, a student or evaluated)."""
    if not getattr(tok, "chat_template", None):
        raise InterpError(
            f"{tok.name_or_path!r} has no chat template, so it cannot be the {stage}: {STAGE_NEEDS[stage]}. "
            "Use a chat (instruct) model; a base model can still be patched on plain text (load_hooked)"
        )


def _apply(tok: PreTrainedTokenizerBase, messages: list[dict[str, str]], gen: bool) -> str:
    if not getattr(tok, "chat_template", None):
        raise InterpError(f"tokenizer {tok.name_or_path!r} has no chat template; a chat model is required")
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    except (TemplateError, ValueError, KeyError, TypeError) as err:
        raise InterpError(f"the chat template cannot render {[m['role'] for m in messages]}: {err}") from err


def _system_block(tok: PreTrainedTokenizerBase) -> str:
    """Text the template writes for a system message alone (with the sentinel as content)."""
    return _apply(tok, [{"role": "system", "content": _SENTINEL}], gen=False)


def render_messages(
    tok: PreTrainedTokenizerBase, messages: list[dict[str, str]], system: str, gen: bool
) -> str:
    """Render user/assistant `messages` under a system prompt setting ("default", "none" or text)."""
    if system == DEFAULT:
        return _apply(tok, messages, gen)
    if system == NONE:
        block = _system_block(tok)
        full = _apply(tok, [{"role": "system", "content": _SENTINEL}, *messages], gen)
        if not full.startswith(block):
            raise InterpError("cannot remove the system turn from this chat template (system='none')")
        return full[len(block) :]
    return _apply(tok, [{"role": "system", "content": system}, *messages], gen)


def render_prompt(tok: PreTrainedTokenizerBase, user: str, system: str = DEFAULT) -> str:
    """The prompt a model sees before answering `user`: ends with the assistant header."""
    return render_messages(tok, [{"role": "user", "content": user}], system, gen=True)


@dataclass(frozen=True)
class ChatExample:
    """A training example split into the prompt text and the completion text the loss is taken on."""

    prompt: str
    completion: str


def render_example(
    tok: PreTrainedTokenizerBase, user: str, answer: str, system: str = DEFAULT
) -> ChatExample:
    """Split a rendered (user, assistant) exchange into prompt and completion (answer + end-of-turn)."""
    prompt = render_prompt(tok, user, system)
    full = render_messages(
        tok, [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], system, gen=False
    )
    if not full.startswith(prompt):
        raise InterpError("chat template: the prompt with generation header is not a prefix of the full chat")
    tail = full[len(prompt) :]
    if not tail.startswith(answer):
        raise InterpError("chat template altered the assistant answer; cannot locate completion tokens")
    eos = tok.eos_token or ""
    end = tail.find(eos, len(answer)) if eos else -1
    completion = tail[: end + len(eos)] if end >= 0 else tail
    return ChatExample(prompt=prompt, completion=completion)


def default_system_prompt(tok: PreTrainedTokenizerBase) -> str | None:
    """The system prompt the template inserts when none is given (None if it inserts nothing)."""
    block = _system_block(tok)
    head, _, tail = block.partition(_SENTINEL)
    rendered = _apply(tok, [{"role": "user", "content": "x"}], gen=False)
    if not rendered.startswith(head):
        return None
    rest = rendered[len(head) :]
    end = rest.find(tail) if tail else -1
    return rest[:end] if end > 0 else None
