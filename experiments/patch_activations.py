"""Claim 4: where does a student's trait shift live? Activation patching between base and student.

    python -m experiments.patch_activations --student runs/students/owl-r8 --trait owl
    python -m experiments.patch_activations --student runs/students/owl-r8 --base path/to/base --directions noise
    python -m experiments.patch_activations --student runs/students/owl-r8 --control runs/students/control-r8 --grids set
    python -m experiments.patch_activations --config RUN/config.json --out RUN --redraw   # figures again, from scores.json

Grids, set patching and figures in the run directory. The stage: `interp.stages.patch_activations.run(cfg)`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from interp.loop.config import cli_main
from interp.stages.patch_activations import LocalizeConfig, run


def main(cfg: LocalizeConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for chatty in ("kaleido", "choreographer"):  # PNG export logs every browser step at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    cli_main(main, LocalizeConfig)
