"""The organism ablation table: one row per candidate world, from its organism.json and report runs.

    python -m experiments.organism_ablation --models /tmp/cand/A /tmp/cand/B \
        --reports runs/screen_A runs/screen_B

A candidate without stored probes (an organism built before they existed) is probed here. The table is
printed and written to --out. The stage: `interp.stages.organism_ablation.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main
from interp.stages.organism_ablation import AblationConfig, run


def main(cfg: AblationConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    cli_main(main, AblationConfig)
