"""Stage 2: fine-tune a student (LoRA at any rank, or full fine-tuning) on a teacher's numbers.

python -m experiments.train_student --dataset runs/numbers/prompted-owl-s0/numbers.jsonl --rank 8
python -m experiments.train_student --dataset ... --mode full --lr 2e-5

The stage: `interp.stages.train_student.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.train_student import TrainStudentConfig, run


def main(cfg: TrainStudentConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, TrainStudentConfig)
