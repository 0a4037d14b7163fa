"""The positive-control ladder: which way of passing the trait does this model's student pick up?

    python -m experiments.ladder --model smollm2-135m --trait cat --constrained --n-numbers 1000 \
        --rungs finetuned-distill finetuned sampled distill greedy --plan

Each rung (sampled, greedy, distill, finetuned, finetuned-distill) is read against its own control;
the table gives the P(trait) and mention-rate lifts, their CIs and the minimum detectable lift
(`interp.stages.ladder`).
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.ladder import LadderConfig, run


def main(cfg: LadderConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, LadderConfig)
