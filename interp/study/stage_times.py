"""Stage times that stay true on a rerun: a stage that found its work done reports the time it took when it
was computed, and says that it was cached.

A run directory keeps `stage_times.json`: per stage, the seconds of the last run that computed it. A stage
counts as computed in this run when it wrote or changed a file under the run directory (a finished job, an evaluation
cache entry, a tensor), when `--force` recomputes everything, or when the directory has never run it; a
stage that wrote nothing on a rerun is cached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from interp.loop.runs import atomic_write_json

LEDGER = "stage_times.json"


@dataclass(frozen=True)
class StageTime:
    seconds: float
    """Wall seconds the stage took in this run."""
    cached: bool
    """Whether this run found the stage's work already done (it wrote nothing new)."""
    computed_s: float | None
    """Wall seconds of the run that computed it (this run's when not cached; None if never recorded)."""


def snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    """Every file under `root` (the ledger aside) with its modification time and size: a stage wrote
    something if the snapshot after it differs from the one before."""
    return {
        p: (st.st_mtime_ns, st.st_size)
        for p in Path(root).rglob("*")
        if p.name != LEDGER and p.is_file() and (st := p.stat())
    }


class StageClock:
    """Times the stages of one run in `root`; `save()` records the computed ones for the next run."""

    def __init__(self, root: Path, force: bool = False) -> None:
        self.root, self.force = Path(root), force
        ledger = self.root / LEDGER
        self.before: dict[str, float] = json.loads(ledger.read_text()) if ledger.exists() else {}
        self.rerun = (self.root / "results.json").exists()
        self.times: dict[str, StageTime] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        files, start = snapshot(self.root), time.perf_counter()
        yield
        seconds = round(time.perf_counter() - start, 1)
        first = name not in self.before and not self.rerun
        computed = self.force or first or snapshot(self.root) != files
        self.times[name] = StageTime(seconds, not computed, seconds if computed else self.before.get(name))

    def seconds(self) -> dict[str, float]:
        """This run's seconds per stage."""
        return {name: t.seconds for name, t in self.times.items()}

    def to_json(self) -> dict[str, dict]:
        return {name: asdict(t) for name, t in self.times.items()}

    def save(self) -> Path:
        """Record every stage's computed time (kept from before for the cached ones)."""
        known = {
            **self.before,
            **{n: t.computed_s for n, t in self.times.items() if t.computed_s is not None},
        }
        return atomic_write_json(self.root / LEDGER, known)
