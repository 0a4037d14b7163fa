"""The benchmark script runs end to end on a tiny model and prints the lines a script parses."""

from __future__ import annotations

import re
from pathlib import Path

from experiments import benchmark
from interp.loop.models import load_model, resolve_model_dir
from interp.plan.flops import MatmulRate
from interp.stages import benchmark as stage

TINY_RUN = {
    "n_prompts": 4, "max_new_tokens": 4, "busy": False, "favourite_samples": 2, "favourite_single": 2,
    "train_rows": 8, "train_repeats": 1, "pretrain_steps": 0, "patching": False,
}  # fmt: skip


def test_benchmark_prints_parseable_lines(tiny_model_dir: Path, capsys) -> None:
    benchmark.main(benchmark.BenchmarkConfig(model=str(tiny_model_dir), **TINY_RUN))
    out = capsys.readouterr().out
    assert re.search(r"^generation speed-up \d+\.\dx$", out, re.M)
    shares = re.findall(
        r"^(student training.*|student distillation.*|generation batched): .*, (\d+)% of matmul rate$",
        out,
        re.M,
    )
    names = [name for name, _ in shares]
    assert len(shares) == 5 and any(n.startswith("student distillation") for n in names)
    assert "student training (LoRA r8, shared prefix off)" in names  # the side-by-side comparison
    assert re.search(
        r"^generation prefill of 4 prompts, seconds by prompts per pass: 16: [\d.]+, ", out, re.M
    )
    assert re.search(r"^model-shaped matmuls \(2048 rows\): [\d.]+ GFLOP/s, \d+% of matmul rate", out, re.M)


def test_pretraining_benchmark_times_both_build_settings() -> None:
    _, tok = load_model(resolve_model_dir(None))  # the organism's tokenizer: the build's world
    lines = stage.bench_pretraining(tok, stage.BenchmarkConfig(pretrain_steps=2), MatmulRate({1: 1e11}, 2))
    assert [line.split(":")[0] for line in lines] == [
        f"organism pretraining ({k})" for k in stage.PRETRAIN_SETTINGS
    ]
    padding = [int(re.search(r"(\d+)% of computed positions are padding", line).group(1)) for line in lines]
    assert padding[1] < padding[0]  # pad_multiple 1 computes less padding than the tied sibling's 32
