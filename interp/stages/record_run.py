"""Record a finished run in the lab notebook (`interp.study.record`): its JSON, markdown and PNG figures,
and report.md without links to the HTML figures a record does not hold.

    run(RecordConfig(run=Path("runs/restrict-fd-t0"), out=Path("docs/smollm2-135m/restrict-fd-t0")))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interp import InterpError
from interp.study.record import record_run


@dataclass
class RecordConfig:
    """Record a finished run directory."""

    run: Path | None = None
    """The finished run directory."""
    out: Path | None = None
    """The record's directory (in docs/)."""
    overwrite: bool = False
    """Replace an existing record."""

    def __post_init__(self) -> None:
        if self.run is None or self.out is None:
            raise InterpError("record_run needs --run and --out")


def run(cfg: RecordConfig) -> list[Path]:
    """The record in `cfg.out`; the files written."""
    return record_run(cfg.run, cfg.out, cfg.overwrite)
