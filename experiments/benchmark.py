"""Speed benchmarks, measured side by side in one run (never as timed tests), each against the machine's limit.

    python -m experiments.benchmark                 # on the embedded organism
    python -m experiments.benchmark --model PATH    # on any local chat model

Batched generation vs a one-at-a-time loop, student training, a few organism pretraining steps and the
batched activation-patching sweep vs TransformerLens's, each as a share of the machine's sustained fp32
matmul rate (`interp.plan.flops` says what is counted). Lines a script can parse: `generation speed-up
NN.Nx`, `patching speed-up NN.Nx ...`, `...: N tokens/s, NN% of matmul rate`. The stage:
`interp.stages.benchmark.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main
from interp.stages.benchmark import BenchmarkConfig, run


def main(cfg: BenchmarkConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    cli_main(main, BenchmarkConfig)
