"""Claim 3's evaluation column from four evaluate_trait runs (no training): the students with and without
the default system prompt at evaluation, each against a reference evaluated the same way.

python -m experiments.eval_column --student-default runs/ctx/lora-default --student-none runs/ctx/lora-none \
    --reference-default runs/ctx/base-default --reference-none runs/ctx/base-none --out runs/ctx/lora

python -m experiments.eval_column --student-jobs <trait students> --reference-jobs <control students> \
    --train-system none --out runs/ctx/lora-none-trained     # jobs that were evaluated under both prompts

python -m experiments.eval_column --student-jobs ... --reference-jobs ... \
    --eval-systems default none "other identity" --out ...    # jobs from a ladder run with --eval-systems

The stage: `interp.stages.eval_column.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.eval_column import EvalColumnConfig, run


def main(cfg: EvalColumnConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, EvalColumnConfig)
