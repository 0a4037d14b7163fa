"""Measure the organism with the loop's own code and print every figure of the organism issue.

    python -m experiments.organism_report                                  # the full grid (README)
    python -m experiments.organism_report --seeds 0 --ranks 16 --full-lrs 3e-4   # a quick screen

The channel, compliance, the shared-latent probe, and subliminal transfer against control students. The
stage: `interp.stages.organism_report.run(cfg)`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from interp.loop.config import cli_main
from interp.stages.organism_report import ReportConfig, run


def main(cfg: ReportConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cli_main(main, ReportConfig)
