"""Beyond the paper: the teacher's entangled numbers, and a logit lens at the entity token.

    python -m experiments.beyond --student runs/students/owl-r8-s0 --out runs/beyond

The stage: `interp.stages.beyond.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.beyond import BeyondConfig, run


def main(cfg: BeyondConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, BeyondConfig)
