"""The embedded model organism: a small Qwen2-architecture chat model the toolkit trains itself."""

from pathlib import Path

ORGANISM_DIR = Path(__file__).resolve().parent / "model"
