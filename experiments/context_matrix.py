"""Claim 3: does transfer need the shared system prompt? Training x evaluation system prompt.

    python -m experiments.context_matrix --rank 8 --out runs/context_matrix

Students and control students trained under each training system prompt, each evaluated under every one
of them. The stage: `interp.stages.context_matrix.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.context_matrix import ContextMatrixConfig, run


def main(cfg: ContextMatrixConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, ContextMatrixConfig)
