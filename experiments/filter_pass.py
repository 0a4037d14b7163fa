"""How many sampled teacher answers pass the number filter, per system prompt, on more samples than the
build's probe (128 per prompt, a standard error of ~0.02) so that candidate organisms can be told apart.

    python -m experiments.filter_pass --models organism organism-tied --n-prompts 1024

Prints, per model, the pass rate under the default prompt and the min / mean over the 10 persona (teacher)
prompts, and writes every rate to `--out` (atomically).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from interp import InterpError
from interp.loop import validate
from interp.loop.config import cli_main, to_dict
from interp.loop.models import load_model
from interp.loop.runs import atomic_write_json
from interp.organism.probes import filter_pass


@dataclass
class FilterPassConfig:
    """Measure the filter pass rate of sampled number answers for each model and system prompt."""

    models: tuple[Path, ...] = ()
    """Organism directories."""
    n_prompts: int = 1024
    """Number prompts sampled once per system prompt (temperature 1)."""
    seed: int = 0
    """Sampling seed."""
    threads: int = 2
    """Torch CPU threads."""
    out: Path = Path("runs/filter_pass.json")
    """Where the rates are written."""


def summary(rates: dict[str, float]) -> str:
    persona = [v for k, v in rates.items() if k != "default"]
    return f"default {rates['default']:.3f}, persona min {min(persona):.3f} mean {sum(persona) / len(persona):.3f}"


def main(cfg: FilterPassConfig) -> Path:
    if not cfg.models or cfg.n_prompts < 1:
        raise InterpError("give at least one --models directory and a positive --n-prompts")
    for model_dir in cfg.models:
        validate.base_model(model_dir, "--models")
    torch.set_num_threads(cfg.threads)
    out = {}
    for model_dir in cfg.models:
        model, tok = load_model(model_dir)
        out[str(model_dir)] = filter_pass(model, tok, cfg.seed, cfg.n_prompts)
        print(f"{model_dir}: {summary(out[str(model_dir)])} ({cfg.n_prompts} answers per prompt)", flush=True)
    return atomic_write_json(cfg.out, {"config": to_dict(cfg), "rates": out})


if __name__ == "__main__":
    cli_main(main, FilterPassConfig)
