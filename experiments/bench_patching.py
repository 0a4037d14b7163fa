"""Benchmark: the batched layer x position resid_pre sweep vs TransformerLens's per-cell patching.

    python -m experiments.bench_patching [--model MODEL] [--repeats N]

Both run on the same bridge, prompt and metric; prints the times, the speed-up (target >= 10x) and the
largest absolute difference between the two grids. The stage: `interp.stages.bench_patching.run(cfg)`
(`python -m experiments.benchmark` runs it too).
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main
from interp.stages.bench_patching import BenchPatchingConfig, run


def main(cfg: BenchPatchingConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    cli_main(main, BenchPatchingConfig)
