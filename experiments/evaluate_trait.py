"""Stage 3: how often does a model (base or student) name the trait as its favorite?

python -m experiments.evaluate_trait --trait owl                       # the base model
python -m experiments.evaluate_trait --trait owl --students runs/students/a runs/students/b
python -m experiments.evaluate_trait --trait owl --students ... --system none

The stage: `interp.stages.evaluate_trait.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.evaluate_trait import EvaluateTraitConfig, run


def main(cfg: EvaluateTraitConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, EvaluateTraitConfig)
