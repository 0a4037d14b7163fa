"""Why LoRA transfers: each rank-sweep student's activation shift against the teacher's persona direction.

    python -m experiments.alignment --out runs/reproduce     # after the rank sweep in the same --out

Uses the finished cells of the rank sweep with the same settings (it trains nothing). The stage:
`interp.stages.alignment.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.alignment import AlignmentConfig, run


def main(cfg: AlignmentConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, AlignmentConfig)
