"""The claims map: each of the paper's claims across the training choices the field disputes.

    python -m experiments.claims_map --out runs/claims_map                    # the default organism
    python -m experiments.claims_map --model organism-tied --out runs/claims_map_tied
    python -m experiments.claims_map --quick --out runs/claims_map_quick      # a smoke-sized map
    python -m experiments.claims_map --executor ray --gpus-per-cell 1 ...     # the same jobs on Ray

Axes: lr per arm, optimizer, precision, layers; every student against a control trained the same way.
The stage: `interp.stages.claims_map.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.claims_map import ClaimsMapConfig, run


def main(cfg: ClaimsMapConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, ClaimsMapConfig)
