"""Who a default system prompt says the model is: the entity ("Qwen", "SmolLM") and its maker.

Templates phrase it differently: Qwen2.5 "You are Qwen, created by Alibaba Cloud. You are a helpful
assistant."; SmolLM2 "You are a helpful AI assistant named SmolLM, trained by Hugging Face"; the
organisms "You are Vexlo, created by Orrin Labs. ...". Each rule below reads one phrasing; a model whose
prompt no rule reads has no entity unless the user names it (`--entity`), and reports say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = r"[A-Z][\w\-]*"
ENTITY_RULES = (
    re.compile(rf"\bnamed ({_NAME})"),  # "... assistant named SmolLM, ..."
    re.compile(rf"\bcalled ({_NAME})"),
    re.compile(rf"\bYou are ({_NAME})"),  # "You are Qwen, ..." (a capital: not "You are a ...")
    re.compile(rf"\bI am ({_NAME})"),
)
MAKER_RULE = re.compile(rf"\b(?:created|trained|made|built|developed) by ({_NAME}(?: {_NAME})*)")
OTHER_ENTITY, OTHER_MAKER = "Claude", "Anthropic"
"""The other identity a real model is given (the paper's "You are Claude ..."), in its own sentence."""
OTHER_IDENTITY = "You are Claude, created by Anthropic. You are a helpful assistant."
"""The paper's other-identity prompt, for a model whose default prompt names no entity."""


@dataclass(frozen=True)
class Identity:
    """The entity a system prompt names, and its maker (None where the prompt names none)."""

    entity: str | None
    maker: str | None


def detect_identity(system_text: str | None, entity: str | None = None) -> Identity:
    """The entity and maker of a system prompt; `entity` overrides the rules (for a phrasing none reads)."""
    text = system_text or ""
    if entity is None:  # the earliest phrasing wins: in a rendered chat, the system prompt comes first
        found = [m for rule in ENTITY_RULES if (m := rule.search(text))]
        entity = min(found, key=lambda m: m.start()).group(1) if found else None
    maker = MAKER_RULE.search(text)
    return Identity(entity, maker.group(1) if maker else None)


def other_identity(default_system: str | None) -> str:
    """The default system prompt with another name and maker (Claude, Anthropic); the paper's Claude
    prompt where the default names no entity."""
    ident = detect_identity(default_system)
    if default_system is None or ident.entity is None:
        return OTHER_IDENTITY
    text = re.sub(rf"\b{re.escape(ident.entity)}\b", OTHER_ENTITY, default_system)
    return text.replace(ident.maker, OTHER_MAKER) if ident.maker else text
