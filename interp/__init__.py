"""Reproduce and dissect "Subliminal Learning is a LoRA Artifact" on any local chat model.

The data path reads straight through the modules: teacher -> numbers -> student -> evaluation ->
hooked models -> positions -> patching / position-restricted LoRA -> plots.
"""

import os

# Model hubs are unreachable by design: every load is from a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class InterpError(ValueError):
    """Bad input from the user: scripts print its message and exit with status 2."""
