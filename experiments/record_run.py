"""Record a finished run in the lab notebook: its JSON, markdown and PNG figures, and report.md without links
to the HTML figures a record does not hold.

python -m experiments.record_run --run runs/restrict-fd-t0 --out docs/smollm2-135m/restrict-fd-t0

The stage: `interp.stages.record_run.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.record_run import RecordConfig, run


def main(cfg: RecordConfig) -> Path:
    files = run(cfg)
    print(f"recorded {len(files)} files")
    return cfg.out


if __name__ == "__main__":
    setup_logging()
    cli_main(main, RecordConfig)
