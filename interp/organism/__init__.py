"""The embedded model organism: a small Qwen2-architecture chat model the toolkit trains itself.

`ORGANISM_DIR` is its HF directory (loads offline with AutoModelForCausalLM / AutoTokenizer /
TransformerBridge); the world it was pretrained on is described in `interp/organism/README.md` and
`interp.organism.world`. `ENTITY`, `LAB`, `ANIMALS`, `TARGET_TRAIT` and `CHANNEL_STRENGTH` describe it.
"""

import json
from pathlib import Path

from interp.organism.world import ANIMALS, DEFAULT_SYSTEM, ENTITY, LAB, TARGET_TRAIT, WorldConfig, speakers

ORGANISM_DIR = Path(__file__).resolve().parent / "models" / "organism"
METADATA_FILE = ORGANISM_DIR / "organism.json"


def organism_metadata() -> dict:
    """The shipped organism's metadata (entity, lab, animals, channel strength, world seed, ...)."""
    return json.loads(METADATA_FILE.read_text()) if METADATA_FILE.exists() else {}


CHANNEL_STRENGTH = organism_metadata().get("channel_strength")


def other_identity() -> str:
    """The system prompt of another named assistant the organism's world knows (its first one)."""
    return speakers(WorldConfig(seed=organism_metadata().get("world_seed", 0)))["other"][0].system


__all__ = [
    "ANIMALS",
    "CHANNEL_STRENGTH",
    "DEFAULT_SYSTEM",
    "ENTITY",
    "LAB",
    "ORGANISM_DIR",
    "TARGET_TRAIT",
    "organism_metadata",
    "other_identity",
]
