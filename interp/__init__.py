"""Reproduce and dissect "Subliminal Learning is a LoRA Artifact" on any local chat model.

The data path reads straight through the modules: teacher -> numbers -> student -> evaluation ->
hooked models -> positions -> patching / position-restricted LoRA -> plots.

Importing it changes no process-wide setting (no environment variable, no global torch state).
"""


class InterpError(ValueError):
    """Bad input from the user: scripts print its message and exit with status 2."""
