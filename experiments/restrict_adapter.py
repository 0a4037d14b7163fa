"""Claim 4: where does the LoRA student's trait shift live? Position-restricted adapters.

    python -m experiments.restrict_adapter --student runs/students/owl-r8-s0 --out runs/localization
    python -m experiments.restrict_adapter --student runs/students/owl-r8-s0 --control runs/students/control-r8-s0 \
        --out runs/localization

The adapter on only at / everywhere except each position set, then by layer and module at the set that
carries the shift. The stage: `interp.stages.restrict_adapter.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.restrict_adapter import LocalizationConfig, run


def main(cfg: LocalizationConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, LocalizationConfig)
