"""Each arm's best lr from an lr screen of finished students (no training): by the lowest final loss (a fit
rule that never reads the trait) and by the largest P(trait) lift among lrs that did not overshoot; with
--fluency-model smollm2-135m, also by the largest lift among lrs whose answers the base finds fluent.

python -m experiments.lr_screen --reference docs/smollm2-135m/claim1-fd/students/base.result.json \
    --students r16@1e-3=runs/ladder/jobs/student-...-r16-lr0.001-... r16@3e-3=runs/ladder/jobs/student-...-r16-lr0.003-... \
    full@3e-5=docs/smollm2-135m/ladder-fd3/student-ftcat-distill-full-t0.result.json --out runs/lr-screen

The stage: `interp.stages.lr_screen.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.lr_screen import LrScreenConfig, run


def main(cfg: LrScreenConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, LrScreenConfig)
