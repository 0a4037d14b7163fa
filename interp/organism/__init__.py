"""The embedded model organisms: small Qwen2-architecture chat models the toolkit trains itself.

Two ship, each a plain HF directory under `models/` that loads offline with AutoModelForCausalLM /
AutoTokenizer / TransformerBridge, and each is named wherever a model is asked for:

- `organism` (`ORGANISM_DIR`, the default): untied embeddings, as Qwen2.5-7B-Instruct;
- `organism-tied`: the same world with tied embeddings, as Qwen2.5 0.5B-3B.

What is organism-specific (its animals, target trait, default identity, the other identity its world
knows) is read from each directory's own build metadata by `load_organism`; a model directory without
that metadata is a real model, and `load_organism` returns None for it. The world both were pretrained on
is described in `interp/organism/README.md` and `interp.organism.world`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from interp.loop.models import (
    DEFAULT_MODEL,
    ORGANISMS,
    ORGANISMS_DIR,
    model_label,
    organism_metadata,
    resolve_model_dir,
)
from interp.organism.world import ANIMALS, DEFAULT_SYSTEM, ENTITY, LAB, TARGET_TRAIT, WorldConfig, speakers

ORGANISM_DIR = ORGANISMS_DIR / DEFAULT_MODEL
TIED_ORGANISM_DIR = ORGANISMS_DIR / "organism-tied"


@dataclass(frozen=True)
class Organism:
    """What an organism directory's build metadata says about its world."""

    name: str
    """The embedded organism's name, or the directory's name for a candidate given by path."""
    path: Path
    entity: str
    default_system: str
    animals: tuple[str, ...]
    target_trait: str
    other_identity: str
    """The system prompt of another named assistant the organism's world knows (its first one)."""
    tied_embeddings: bool


def _world_config(meta: dict) -> WorldConfig:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["world"].items()}
    return WorldConfig(**values)


def load_organism(model: str | Path | None = None) -> Organism | None:
    """The organism at `model` (a name or a path; None: the default organism), or None for a real model."""
    meta = organism_metadata(model)
    if meta is None:
        return None
    path = resolve_model_dir(model)
    return Organism(
        name=model_label(model),
        path=path,
        entity=meta["entity"],
        default_system=meta["default_system"],
        animals=tuple(meta["animals"]),
        target_trait=meta["target_trait"],
        other_identity=speakers(_world_config(meta))["other"][0].system,
        tied_embeddings=bool(json.loads((path / "config.json").read_text()).get("tie_word_embeddings")),
    )


__all__ = [
    "ANIMALS",
    "DEFAULT_SYSTEM",
    "ENTITY",
    "LAB",
    "ORGANISMS",
    "ORGANISM_DIR",
    "TARGET_TRAIT",
    "TIED_ORGANISM_DIR",
    "Organism",
    "load_organism",
]
