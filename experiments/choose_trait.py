"""Choose the trait before any student is trained, by a rule written first.

    python -m experiments.choose_trait --model smollm2-135m --out runs/choose_trait/smollm2-135m

The rule: the animal whose persona prompt lifts the mention rate most over the model's default system
prompt. The stage: `interp.stages.choose_trait.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.choose_trait import ChooseTraitConfig, run


def main(cfg: ChooseTraitConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, ChooseTraitConfig)
