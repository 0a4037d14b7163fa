"""Stage 1: a teacher writes number sequences; keep only answers that pass the filter.

python -m experiments.generate_numbers --trait owl --n 10000 --out runs/numbers/owl
python -m experiments.generate_numbers --teacher-kind control --out runs/numbers/control

The stage: `interp.stages.generate_numbers.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.generate_numbers import GenerateNumbersConfig, run


def main(cfg: GenerateNumbersConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, GenerateNumbersConfig)
