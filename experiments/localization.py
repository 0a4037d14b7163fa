"""Old name of `experiments.restrict_adapter` (position-restricted LoRA), kept for one release."""

from experiments.restrict_adapter import LocalizationConfig, main
from interp.loop.config import cli_main, setup_logging

__all__ = ["LocalizationConfig", "main"]

if __name__ == "__main__":
    setup_logging()
    cli_main(main, LocalizationConfig)
