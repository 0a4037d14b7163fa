"""Rebuild the embedded model organism from scratch: world -> tokenizer -> pretraining -> HF directory.

python -m experiments.build_organism            # rewrites interp/organism/models/organism/ (about 11 min, 2 cores)
python -m experiments.build_organism --out /tmp/organism --channel-strength 0.5
"""

from __future__ import annotations

import logging
from pathlib import Path

from interp.loop import validate
from interp.loop.config import cli_main
from interp.organism import ORGANISM_DIR
from interp.organism.build import BuildConfig, build_organism


def main(cfg: BuildConfig) -> Path:
    """Build the organism into `cfg.out` (default: the shipped organism's directory) and return it."""
    out = validate.build_out(cfg.out) if cfg.out is not None else ORGANISM_DIR
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return build_organism(cfg, out)


if __name__ == "__main__":
    cli_main(main, BuildConfig)
