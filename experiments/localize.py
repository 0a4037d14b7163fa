"""Old name of `experiments.patch_activations` (activation patching), kept for one release."""

import logging

from experiments.patch_activations import LocalizeConfig, main
from interp.loop.config import cli_main

__all__ = ["LocalizeConfig", "main"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cli_main(main, LocalizeConfig)
