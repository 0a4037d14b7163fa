"""Beyond the paper: does the trait travel through the divergence tokens? (Schrodi et al., arXiv 2509.23886)

    python -m experiments.divergence --out runs/reproduce --rank 16    # after the rank sweep in that --out

The rank-`rank` student retrained with the teacher's top divergence tokens masked out of its loss, and
with as many random tokens masked. The stage: `interp.stages.divergence.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.divergence import DivergenceConfig, run


def main(cfg: DivergenceConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, DivergenceConfig)
