"""Benchmark: the batched layer x position resid_pre sweep vs TransformerLens's per-cell patching.

    run(BenchPatchingConfig(model="organism", repeats=3))      # python -m experiments.bench_patching

Both run on the same bridge, prompt and metric; prints the times, the speed-up (target >= 10x) and the
largest absolute difference between the two grids. With a matmul `rate` (from `interp.plan.flops`), also the
FLOP/s each side would need to run one full forward pass per cell in that time, as a share of the rate
(the batched sweep can exceed 100%: it skips the layers and positions a patch cannot change).
`interp.stages.benchmark` calls `bench_patching`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformer_lens.patching import get_act_patch_resid_pre

from interp.loop import validate
from interp.loop.chat import render_prompt
from interp.loop.threads import torch_threads
from interp.mech.hooked import load_hooked
from interp.mech.patching import TraitMetric, patch_layer_pos
from interp.mech.positions import CLASSES, ENTITY, USER, LabelledBatch, encode_prompts
from interp.plan.flops import MatmulRate, inference_flops, matmul_rate, sequence_attention_context


@dataclass
class BenchPatchingConfig:
    """Time the batched layer x position patching sweep against TransformerLens's per-cell one."""

    model: str | None = None
    """Model: an embedded organism by name (organism, organism-tied), a fetched real model (smollm2-135m) a local HF directory or a hub name (org/name, from the hub cache or downloaded) (default: organism)."""
    repeats: int = 1
    """Runs of each sweep; the fastest is reported."""


def _prompt_pair(tok) -> tuple[LabelledBatch, LabelledBatch]:
    """A clean prompt and a corrupted copy whose entity tokens are replaced (same length by construction)."""
    clean = encode_prompts(tok, [render_prompt(tok, "What is your favorite animal? Answer in one word.")])
    corrupt = replace(clean, input_ids=clean.input_ids.clone())
    where = clean.class_mask(ENTITY)
    if not where.any():  # a model whose default system prompt names no entity: corrupt the first user token
        where = clean.class_mask(USER).cumsum(-1) == 1
    corrupt.input_ids[where & clean.class_mask(*CLASSES)] = clean.input_ids[0, -1]
    return clean, corrupt


def best_of(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[torch.Tensor, float]:
    """`fn`'s result and its fastest time over `repeats` runs (both sweeps are timed alike)."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def bench_patching(
    model_dir: str | Path | None = None, repeats: int = 1, rate: MatmulRate | None = None
) -> list[str]:
    """Time both sweeps on one model and prompt; the lines to print."""
    hooked = load_hooked(model_dir)
    tok, bridge = hooked.tok, hooked.bridge
    clean, corrupt = _prompt_pair(tok)
    metric = TraitMetric(tuple(tok(" owl", add_special_tokens=False)["input_ids"][:1]), name="log p(owl)")

    with torch.no_grad():  # warm-up: first calls pay one-off allocation and dispatch costs
        bridge(clean.input_ids)
        patch_layer_pos(hooked, hooked, corrupt, metric, "resid_pre", donor_batch=clean)

    def ours_sweep() -> torch.Tensor:
        return patch_layer_pos(hooked, hooked, corrupt, metric, "resid_pre", donor_batch=clean).raw

    def tl_sweep() -> torch.Tensor:
        with torch.no_grad():
            _, cache = bridge.run_with_cache(clean.input_ids)
            return get_act_patch_resid_pre(
                bridge, corrupt.input_ids, cache, lambda logits: metric(logits).mean()
            )

    (ours, t_ours), (theirs, t_tl) = best_of(ours_sweep, repeats), best_of(tl_sweep, repeats)

    cells, width = ours.numel(), corrupt.input_ids.shape[1]
    diff = float((ours - theirs.cpu()).abs().max())
    lines = [
        f"patching: layer x position resid_pre sweep, {hooked.n_layers} layers x {width} positions = {cells} cells",
        f"  batched sweep (interp.mech.patching)          {t_ours:8.2f} s  ({cells / t_ours:8.1f} cells/s)",
        f"  transformer_lens get_act_patch_resid_pre {t_tl:8.2f} s  ({cells / t_tl:8.1f} cells/s)",
    ]
    if rate is not None:
        per_cell = inference_flops(bridge.original_model, width, sequence_attention_context(width))
        lines += [
            f"  at one full forward per cell: batched {100 * cells * per_cell / t_ours / rate.best:.0f}%, "
            f"transformer_lens {100 * cells * per_cell / t_tl / rate.best:.0f}% of matmul rate"
        ]
    return lines + [f"patching speed-up {t_tl / t_ours:.1f}x (target >= 10x), max |difference| {diff:.2e}"]


def run(cfg: BenchPatchingConfig) -> Path:
    """Both sweeps on 2 torch threads (as `interp.stages.benchmark` measures; the caller's setting is
    restored), the lines printed."""
    model_dir = validate.base_model(cfg.model)
    with torch_threads(2):
        lines = bench_patching(model_dir, cfg.repeats, rate=matmul_rate())
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return model_dir
