"""Claim 3's context matrix from eval_column runs (no training), one per training prompt: the cells, claim 3's
verdict and the training row (students trained without the prompt, against the default-trained ones).

python -m experiments.context_grid --columns runs/ctx/column-lora runs/ctx/column-lora-none --out runs/ctx/grid

The stage: `interp.stages.context_grid.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.context_grid import ContextGridConfig, run


def main(cfg: ContextGridConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, ContextGridConfig)
