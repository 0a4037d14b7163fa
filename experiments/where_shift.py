"""Claim 4 over seeds: where the shift lives, from finished patch_activations and restrict_adapter runs (no
model is loaded), one panel per student, and the sets every student agrees on.

python -m experiments.where_shift --patching runs/patch-lora-t0 runs/patch-lora-t1 \
    --localization runs/restrict-t0 runs/restrict-t1 --out runs/where-lora

The stage: `interp.stages.where_shift.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.where_shift import WhereConfig, run


def main(cfg: WhereConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, WhereConfig)
