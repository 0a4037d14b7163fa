"""Record a finished run in the lab notebook: what a record keeps of a run directory, and nothing else.

    record_run(Path("runs/restrict-fd-t0"), Path("docs/smollm2-135m/restrict-fd-t0"))

A record keeps the run's top-level JSON and markdown (config, results, scores, report) and its PNG
figures (`figures/*.png`), which render on a code host. It leaves out the interactive HTML figures (they
load a plotly.min.js that a record does not hold, so they would render blank), tensors, weights, caches and
job directories; report.md loses its links to the HTML figures (`interp.study.report.figure_markdown`'s
convention for a recorded report). A figure with HTML and no PNG is refused: the record would lose it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from interp import InterpError
from interp.loop.runs import atomic_write_text, run_directory

TOP_LEVEL = ("*.json", "*.md")
HTML_LINK = re.compile(r"\n*^\[[^\]\n]* \(interactive HTML\)\]\([^)\n]*\.html\)$", re.MULTILINE)


def without_html_links(markdown: str) -> str:
    """report.md as a record shows it: the links to interactive HTML figures removed, with the blank line
    each left behind."""
    return HTML_LINK.sub("", markdown)


def record_files(run: Path) -> list[Path]:
    """The files of `run` that a record keeps, relative to it; a figure without its PNG is refused."""
    run = Path(run)
    if not (run / "config.json").is_file():
        raise InterpError(f"{run} is not a finished run directory (no config.json)")
    figures = run / "figures"
    lost = sorted(h.stem for h in figures.glob("*.html") if not h.with_suffix(".png").exists())
    if lost:
        raise InterpError(
            f"{run}: figures with no PNG ({', '.join(lost)}); a record keeps PNGs only - rerun where PNG "
            "export works (it needs chromium for kaleido)"
        )
    keep = [p for pattern in TOP_LEVEL for p in run.glob(pattern) if p.is_file()]
    return sorted(p.relative_to(run) for p in [*keep, *figures.glob("*.png")])


def record_run(run: Path, out: Path, overwrite: bool = False) -> list[Path]:
    """Copy what a record keeps of `run` into `out` (written whole or not at all); the files written."""
    files = record_files(run)
    with run_directory(out, None, overwrite) as staging:
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            if rel.name == "report.md":
                atomic_write_text(staging / rel, without_html_links((Path(run) / rel).read_text()))
            else:
                shutil.copy2(Path(run) / rel, staging / rel)
    return [Path(out) / rel for rel in files]
