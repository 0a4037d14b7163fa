"""Numbers and settings as prose for the reports: lists in words, prompts by name, stage times, table rows.

Reports never show a raw Python list or dict; these turn them into sentences and escaped markdown rows.
"""

from __future__ import annotations

from typing import Any

from interp.study.stage_times import StageTime


def listed(values: list[Any]) -> str:
    """A list as prose: "1, 4 and 16", or "none"."""
    words = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    return (
        "none" if not words else words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    )


def prompts_text(systems: dict[str, str]) -> str:
    """The context matrix's system prompts as prose: each name with its text (default and none explained)."""
    meaning = {"default": "the model's own default system prompt", "none": "no system turn"}
    return "; ".join(f"{name}: {meaning.get(text, repr(text))}" for name, text in systems.items())


def stage_times_text(times: dict[str, StageTime], total: float) -> str:
    """The stages' times as sentences: each stage's time when it was computed; a cached one says so, with
    this run's time beside it; cached stages whose computing run was not timed are named as such."""
    label = {name: name.replace("_", " ") for name in times}
    parts = [
        f"{label[n]} {t.seconds:.1f} s"
        if not t.cached
        else f"{label[n]} {t.computed_s:.1f} s (cached; {t.seconds:.1f} s in this run)"
        for n, t in times.items()
        if not t.cached or t.computed_s is not None
    ]
    untimed = [label[n] for n, t in times.items() if t.cached and t.computed_s is None]
    cached = sum(t.cached for t in times.values())
    text = f"Stage times: {', '.join(parts)}. " if parts else ""
    text += f"Cached by an earlier run whose times were not recorded: {listed(untimed)}. " if untimed else ""
    return text + f"This run took {total:.1f} s in all ({cached} of {len(times)} stages cached)."


def machine_text(matmul_gflops: float | None, threads: int) -> str:
    """The machine's measured fp32 matmul rate as a clause, so that stage times compare across machines."""
    if matmul_gflops is None:
        return ""
    return f" The machine's fp32 matmuls (512 x 512, {threads} threads) ran at {matmul_gflops:.0f} GFLOP/s."


def markdown_row(cells: list[str]) -> str:
    """One markdown table row; a `|` inside a cell is escaped so that it cannot add a column."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
