"""Claims 1 and 2: transfer vs LoRA rank, and under full fine-tuning, against a control student.

    python -m experiments.rank_sweep --ranks 1 4 16 64 --full-lrs 2e-5 2e-4 --out runs/rank_sweep

Teacher numbers -> LoRA students at each rank (alpha = rank) and full-FT students at each learning rate;
control students train the same way on the base model's own numbers. The stage:
`interp.stages.rank_sweep.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.rank_sweep import RankSweepConfig, run


def main(cfg: RankSweepConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, RankSweepConfig)
