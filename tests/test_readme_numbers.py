"""The README's findings tables agree with the results they cite: every decimal number in a column's cells
is a value (to the precision written) in one of the results JSON files that the table's `results` row links
for that column. A number typed by hand, or left behind when a result was rerun, fails here."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
NUM = r"[+-]?\d+\.\d+"
DECIMAL = re.compile(rf"(?<![\w.])({NUM})(?![\w.])")  # 0.116, +0.0434, -0.00; not 3e-3 or r64
SETTING = re.compile(r"\b(?:momentum|lr) [\d.e-]+")  # a setting, not a result
MDE = re.compile(rf"MDE (?:>= )?({NUM})")  # the minimum detectable lift: a value of the results
WITH_CI = re.compile(rf"(?<![\w.])({NUM}) \[({NUM}), ({NUM})\]")  # +0.116 [0.094, 0.139]
LINK = re.compile(r"\]\(([^)]+\.json)\)")


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in `text`, as rows of cells (the separator row dropped)."""
    found, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def findings_tables(text: str) -> list[list[list[str]]]:
    """The tables under "## Findings" that carry a `results` row."""
    section = text.split("## Findings", 1)[1].split("\n## ", 1)[0]
    return [t for t in tables(section) if any(r[0] == "results" for r in t)]


def records(value) -> list[tuple[list[float], list[list[float]]]]:
    """Every JSON object at any depth, as (its numbers, its number pairs): a lift and its CI sit side by
    side in one object. Per-question arrays and curves (lists of more than two numbers) are left out, so a
    number cannot match by chance among thousands."""
    if isinstance(value, list):
        return [r for item in value for r in records(item)]
    if not isinstance(value, dict):
        return []
    num = lambda x: isinstance(x, int | float) and not isinstance(x, bool)  # noqa: E731
    scalars = [float(v) for v in value.values() if num(v)]
    pairs = [
        [float(a) for a in v]
        for v in value.values()
        if isinstance(v, list) and len(v) == 2 and all(map(num, v))
    ]
    return [(scalars, pairs)] + [r for v in value.values() for r in records(v)]


def written_as(text: str, values: list[float]) -> bool:
    """Whether some value rounds to `text` at the precision it is written with (signs as written)."""
    decimals = len(text.split(".")[1])
    target = float(text)
    half = 0.5 * 10.0**-decimals * (1 + 1e-9)
    return any(abs(v - target) <= half for v in values)


def column_sources(table: list[list[str]]) -> dict[int, list[Path]]:
    row = next(r for r in table if r[0] == "results")
    return {i: [ROOT / p for p in LINK.findall(cell)] for i, cell in enumerate(row) if i > 0}


def test_the_findings_tables_cite_results_for_every_column():
    found = findings_tables(README.read_text())
    assert found, "the README's findings tables carry no `results` row"
    for table in found:
        for i, paths in column_sources(table).items():
            cells = [r[i] for r in table if r[0] != "results" and i < len(r)]
            if any(DECIMAL.search(c) for c in cells):
                assert paths, f"column {table[0][i]!r} has numbers and cites no results JSON"
            for p in paths:
                assert p.is_file(), f"{p} (cited by column {table[0][i]!r}) does not exist"


def cited(paths: list[Path]) -> list[tuple[list[float], list[list[float]]]]:
    return [r for p in paths for r in records(json.loads(p.read_text()))]


def beside(x: str, lo: str, hi: str, record) -> bool:
    """Whether `record` holds the value `x` with the CI [lo, hi] beside it."""
    scalars, pairs = record
    return written_as(x, scalars) and any(written_as(lo, [a]) and written_as(hi, [b]) for a, b in pairs)


def found(cell: str, recs) -> list[str]:
    """The numbers of `cell` that no cited record holds. Each result comes with its CI, and the value and
    that CI must sit side by side in one record; an MDE must be a value of some record; settings (an lr, a
    momentum) are not results. A result without a CI is reported as such."""
    missing = [
        f"{x} [{lo}, {hi}]"
        for x, lo, hi in WITH_CI.findall(cell)
        if not any(beside(x, lo, hi, r) for r in recs)
    ]
    rest = SETTING.sub("", WITH_CI.sub("", cell))
    missing += [f"MDE {m}" for m in MDE.findall(rest) if not any(written_as(m, s) for s, _ in recs)]
    return missing + [f"{n} (no CI)" for n in DECIMAL.findall(MDE.sub("", rest))]


def test_every_number_in_the_findings_tables_is_in_the_results_its_column_cites():
    wrong = []
    for table in findings_tables(README.read_text()):
        for i, paths in column_sources(table).items():
            recs = cited(paths)
            for row in table[1:]:
                if row[0] != "results" and i < len(row):
                    wrong += [(table[0][i], row[0], n) for n in found(row[i], recs)]
    assert not wrong, f"README numbers found in no cited result (column, row, number): {wrong}"


def test_a_lift_matches_only_beside_its_own_ci():
    recs = [([0.116, 0.09, 0.14], [[0.09, 0.14]]), ([0.05, 0.094, 0.139], [[0.094, 0.139]])]
    assert found("+0.116 [0.09, 0.14]", recs) == []
    assert found("+0.116 [0.094, 0.139]", recs) == ["+0.116 [0.094, 0.139]"]  # each number is there, apart
    assert found("0.05 alone", recs) == ["0.05 (no CI)"]
    assert found("lr 0.003, momentum 0.9, MDE >= 0.05", recs) == [] and found("MDE 0.06", recs) == [
        "MDE 0.06"
    ]


@pytest.mark.parametrize(
    ("text", "values", "ok"),
    [
        ("+0.116", [0.11632], True),
        ("0.116", [0.1174], False),
        ("-0.00", [0.004], True),
        ("0.51", [0.5], False),
    ],
)
def test_a_number_matches_only_at_the_precision_it_is_written_with(text, values, ok):
    assert written_as(text, values) is ok
