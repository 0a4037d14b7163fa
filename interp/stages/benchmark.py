"""Speed benchmarks, measured side by side in one run (never as timed tests), each against the machine's limit.

    run(BenchmarkConfig())                 # on the embedded organism (python -m experiments.benchmark)
    run(BenchmarkConfig(model=PATH))       # on any local chat model

First measures the machine's sustained fp32 matmul rate (the yardstick, at the benchmark's thread count)
and the rate the model's own matmul shapes reach (the practical ceiling), then prints, for each hot path,
its throughput and its achieved model FLOP/s as a share of the yardstick
(`interp.plan.flops` says what is counted): batched generation vs a one-at-a-time loop (number prompts, then
again while a busy process started here competes for the cores, then the favourite-question evaluation
with `samples=`), student training (full and LoRA), a few organism pretraining steps, and the batched
activation-patching sweep vs TransformerLens's per-cell `get_act_patch_resid_pre`. Lines a script can
parse: `generation speed-up NN.Nx`, `patching speed-up NN.Nx ...`, `...: N tokens/s, NN% of matmul rate`.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from transformers import PreTrainedModel, PreTrainedTokenizerBase, Qwen2ForCausalLM

from interp.loop import validate
from interp.loop.chat import render_prompt
from interp.loop.generation import PREFILL_ROWS, generate, left_padded, prefill
from interp.loop.models import load_model
from interp.loop.numbers import number_prompts
from interp.loop.threads import seeded, torch_threads
from interp.loop.training import IGNORE, Distiller, TrainConfig, encode_example, train_student
from interp.loop.traits import favorite_questions
from interp.organism import build
from interp.organism import world as W
from interp.plan.flops import (
    MatmulRate,
    inference_flops,
    matmul_rate,
    model_matmul_rate,
    sequence_attention_context,
    training_flops,
)
from interp.stages.bench_patching import bench_patching

T = TypeVar("T")


@dataclass
class BenchmarkConfig:
    """Time the loop's hot paths on one model, each as a share of the machine's matmul rate."""

    model: str | None = None
    """Model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default: organism)."""
    threads: int = 2
    """Torch CPU threads for every measurement (the matmul yardstick included)."""
    n_prompts: int = 256
    """Number-task prompts answered by both generation strategies."""
    max_new_tokens: int = 32
    """Tokens generated per number answer."""
    busy: bool = True
    """Also run the generation comparison while a busy process (started and stopped here) shares the cores."""
    favourite_samples: int = 20
    """Samples per favourite question in the evaluation workload (50 questions, 12 new tokens each)."""
    favourite_single: int = 64
    """Answers of that workload timed one at a time (the loop's rate per answer is steady)."""
    train_rows: int = 256
    """Rows per training-throughput measurement."""
    train_repeats: int = 2
    """Training runs per mode (each from a fresh model); the fastest is reported."""
    pretrain_steps: int = 10
    """Organism pretraining steps timed (after as many warm-up steps on the same batch shapes)."""
    patching: bool = True
    """Also run the activation-patching benchmark."""


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def share(flops: float, seconds: float, rate: MatmulRate) -> str:
    """Achieved FLOP/s as a percentage of the matmul yardstick."""
    return f"{100 * flops / seconds / rate.best:.0f}% of matmul rate"


@contextlib.contextmanager
def busy_process(threads: int) -> Iterator[None]:
    """A competing process running fp32 matmuls on `threads` threads until the block ends."""
    code = (
        f"import torch\ntorch.set_num_threads({threads})\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(2.0)  # let it import torch and start competing
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def generation_flops(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    samples: int,
    max_new_tokens: int,
) -> float:
    """Useful forward FLOPs: each prompt's prefill once (unembedded at its last position only), then every
    answer token fed back (all but the last when an answer ran to `max_new_tokens`), each unembedded."""
    lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
    flops = sum(inference_flops(model, n, sequence_attention_context(n), logits=1) for n in lengths)
    for i, answer in enumerate(answers):
        n = min(len(tok(answer, add_special_tokens=False)["input_ids"]), max_new_tokens - 1)
        flops += inference_flops(model, n, sequence_attention_context(n, lengths[i // samples]), logits=n)
    return flops


def compare_generation(
    model,
    tok,
    prompts: list[str],
    max_new_tokens: int,
    samples: int,
    n_single: int,
    rate: MatmulRate,
    label: str,
) -> list[str]:
    """Batched `generate` (all prompts x samples in one batch) vs one call per answer (first `n_single`)."""
    n = len(prompts) * samples
    answers, t_batched = timed(
        lambda: generate(model, tok, prompts, max_new_tokens, batch_size=n, samples=samples)
    )
    singles = [prompts[i // samples] for i in range(min(n, n_single))]
    single_answers, t_single = timed(
        lambda: [generate(model, tok, [p], max_new_tokens, batch_size=1)[0] for p in singles]
    )
    work = generation_flops(model, tok, prompts, answers, samples, max_new_tokens)
    single_work = generation_flops(model, tok, singles, single_answers, 1, max_new_tokens)
    return [
        f"{label} batched: {n / t_batched:.1f} answers/s, {share(work, t_batched, rate)}",
        f"{label} one-at-a-time: {len(singles) / t_single:.1f} answers/s, {share(single_work, t_single, rate)}",
        f"{label} speed-up {(n / t_batched) / (len(singles) / t_single):.1f}x",
    ]


def bench_prefill(model, tok, prompts: list[str], rows: tuple[int, ...] = (16, 32, 64, 256)) -> str:
    """Seconds to prefill `prompts` at several prompts per pass (the best of 2 after a warm-up)."""
    ids, mask, pos = left_padded(tok, prompts)
    times = {}
    for n in rows:
        prefill(model, ids, mask, pos, rows=n)
        times[n] = min(timed(lambda n=n: prefill(model, ids, mask, pos, rows=n))[1] for _ in range(2))
    by_rows = ", ".join(f"{n}: {t:.2f}" for n, t in times.items())
    return f"generation prefill of {len(prompts)} prompts, seconds by prompts per pass: {by_rows} (default {PREFILL_ROWS})"


def bench_generation(model, tok, cfg: BenchmarkConfig, rate: MatmulRate) -> list[str]:
    numbers = [render_prompt(tok, p.text) for p in number_prompts(cfg.n_prompts, seed=0)]
    generate(model, tok, numbers[:8], 4, batch_size=8)  # warm-up
    lines = compare_generation(model, tok, numbers, cfg.max_new_tokens, 1, len(numbers), rate, "generation")
    lines.append(bench_prefill(model, tok, numbers))
    if cfg.busy:
        with busy_process(cfg.threads):
            busy = compare_generation(
                model, tok, numbers, cfg.max_new_tokens, 1, len(numbers), rate, "generation"
            )
        lines += [f"{line} (cores shared with a busy process)" for line in busy]
    questions = [render_prompt(tok, q) for q in favorite_questions("animal")]
    return lines + compare_generation(
        model, tok, questions, 12, cfg.favourite_samples, cfg.favourite_single, rate,
        f"generation favourite questions (samples={cfg.favourite_samples})",
    )  # fmt: skip


def _attended(lengths: list[int]) -> float:
    return sum(sequence_attention_context(n) for n in lengths)


def bench_training(model_dir: Path, cfg: BenchmarkConfig, rate: MatmulRate) -> list[str]:
    """Student training, full and LoRA r8 (and LoRA r8 with every row run whole, the shared prefix not run
    once: the side-by-side measure of what sharing saves), and LoRA r8 distilling a teacher's logits (the
    ladder's distillation rungs: a teacher forward beside every student step, counted in its work). Work
    counts every real token, the shared prefix in every row: the rate a run without sharing would need."""
    rng = random.Random(0)
    rows = [
        {"prompt": p.text, "completion": ", ".join(str(rng.randrange(1000)) for _ in range(8))}
        for p in number_prompts(cfg.train_rows, seed=1)
    ]
    _, tok = load_model(model_dir)
    encoded = [encode_example(tok, r["prompt"], r["completion"], "default") for r in rows]
    lengths = [len(e.input_ids) for e in encoded]
    labelled = sum(t != IGNORE for e in encoded for t in e.labels)
    lines = []
    for mode, loss, shared, label in (
        ("full", "ce", True, "student training"),
        ("lora", "ce", True, "student training (LoRA r8)"),
        ("lora", "ce", False, "student training (LoRA r8, shared prefix off)"),
        ("lora", "distill", True, "student distillation (LoRA r8, teacher logits)"),
    ):
        runs = []
        for _ in range(cfg.train_repeats):  # each from a fresh copy of the model; the fastest is reported
            model, tok = load_model(model_dir)
            distiller = Distiller(load_model(model_dir)[0].eval(), encoded) if loss == "distill" else None
            tcfg = TrainConfig(mode=mode, rank=8, epochs=1, loss=loss, share_prefix=shared)
            runs.append(train_student(model, tok, rows, "default", tcfg, distiller=distiller))
        result = max(runs, key=lambda r: r.tokens_per_s)
        tokens, seconds = sum(lengths), sum(lengths) / result.tokens_per_s
        work = training_flops(result.model, tokens, _attended(lengths), logits=labelled)
        if distiller is not None:
            work += inference_flops(distiller.teacher, tokens, _attended(lengths), logits=labelled)
        lines.append(f"{label}: {result.tokens_per_s:.0f} tokens/s, {share(work, seconds, rate)}")
    return lines


PRETRAIN_SETTINGS = {  # the tied sibling was built with the former, the default organism with the latter
    "--pad-multiple 32 --unembed all": {"pad_multiple": 32, "unembed": "all"},
    "--pad-multiple 1 --unembed labelled": {"pad_multiple": 1, "unembed": "labelled"},
}


def bench_pretraining(tok: PreTrainedTokenizerBase, cfg: BenchmarkConfig, rate: MatmulRate) -> list[str]:
    """A few steps of `interp.organism.build.pretrain`, on a small sample of the world, with the settings the
    tied sibling was built with and with the faster ones of the default build."""
    world = W.generate_world(build.world_config(build.BuildConfig()), 2000, 1000)  # the build's 2:1 mix
    seqs, lines = build.encode_world(world, tok), []
    for label, settings in PRETRAIN_SETTINGS.items():
        bcfg = build.BuildConfig(steps=cfg.pretrain_steps, threads=cfg.threads, probe_every=0, **settings)
        stream = build.batches(
            seqs, bcfg.batch_size, random.Random(bcfg.seed), tok.pad_token_id, bcfg.pad_multiple
        )
        drawn = [next(stream) for _ in range(bcfg.steps)]  # the batches `pretrain` will draw (same seed)
        lengths = [int(n) for _, _, m in drawn for n in m.sum(1)]
        labelled = sum(int((y[:, 1:] != IGNORE).sum()) for _, y, _ in drawn)
        padded = sum(m.numel() for _, _, m in drawn)
        times = []
        for _ in range(3):  # the first run meets each batch width once (kernel planning); best of the others
            with seeded(bcfg.seed):
                model = Qwen2ForCausalLM(build.model_config(bcfg, tok))
            times.append(timed(lambda m=model, c=bcfg, x=seqs: build.pretrain(m, x, c, tok.pad_token_id))[1])
        seconds = min(times[1:])
        work = training_flops(model, sum(lengths), _attended(lengths), logits=labelled)
        lines.append(
            f"organism pretraining ({label}): {sum(lengths) / seconds:.0f} tokens/s, {share(work, seconds, rate)} "
            f"({bcfg.steps} steps of {bcfg.batch_size} sequences; {100 * (1 - sum(lengths) / padded):.0f}% of "
            f"computed positions are padding, {100 * labelled / sum(lengths):.0f}% of real ones labelled)"
        )
    return lines


def say(line: str) -> None:
    """One line of the benchmark's output, printed as it comes (a run takes minutes)."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def run(cfg: BenchmarkConfig) -> Path:
    """Every benchmark on `cfg.threads` torch threads (the caller's setting is restored), printed line by line."""
    model_dir = validate.base_model(cfg.model)
    with torch_threads(cfg.threads):
        measure(cfg, model_dir)
    return model_dir


def measure(cfg: BenchmarkConfig, model_dir: Path) -> None:
    model, tok = load_model(model_dir)
    say(
        f"model {model_dir} ({sum(p.numel() for p in model.parameters()):,} parameters), {cfg.threads} threads"
    )
    rate = matmul_rate()
    sizes = ", ".join(f"{n}: {r / 1e9:.1f}" for n, r in rate.by_size.items())
    say(f"matmul rate (fp32, GFLOP/s by size): {sizes}; yardstick {rate.best / 1e9:.1f} GFLOP/s")
    for rows in (256, 2048):  # a decoding step's rows; a training batch's tokens
        ceiling = model_matmul_rate(model, rows)
        say(
            f"model-shaped matmuls ({rows} rows): {ceiling / 1e9:.1f} GFLOP/s, {100 * ceiling / rate.best:.0f}% "
            "of matmul rate (what the model's own matmuls reach: the ceiling for the lines below)"
        )
    for line in bench_generation(model, tok, cfg, rate) + bench_training(model_dir, cfg, rate):
        say(line)
    if cfg.pretrain_steps > 0 and isinstance(model, Qwen2ForCausalLM) and cfg.model is None:
        for line in bench_pretraining(tok, cfg, rate):
            say(line)
    if cfg.patching:
        for line in bench_patching(model_dir, repeats=3, rate=rate):
            say(line)
