"""The main job: every experiment of the paper on one model, and one report.

    python -m experiments.reproduce --out runs/reproduce            # the embedded organism, default grid
    python -m experiments.reproduce --out DIR --quick               # smoke-test grid
    python -m experiments.reproduce --out DIR --full                # paper-sized grid
    python -m experiments.reproduce --model /models/Qwen2.5-7B-Instruct --trait cat --dtype bfloat16 \
        --device cuda --out runs/qwen7b --full

Chains the stages in one run directory (`interp.stages.reproduce.run`: rank sweep and full FT, context
matrix, restricted adapter, patching, alignment, divergence, beyond, optionally the claims map) and writes
report.md, report.html and results.json. A rerun with the same --out skips finished cells; --force
recomputes.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.reproduce import ReproduceConfig, run


def main(cfg: ReproduceConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, ReproduceConfig)
