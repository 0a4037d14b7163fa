"""The README's code runs: every fenced python block, in order, in one namespace, on the embedded organism."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(markdown: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.M | re.S)


def test_the_readme_has_python_blocks_and_they_are_found() -> None:
    assert len(python_blocks("text\n```python\na = 1\n```\n```bash\nb\n```\n```python\nc = 2\n```\n")) == 2
    assert len(python_blocks(README.read_text())) >= 2


def test_every_readme_python_block_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(README.parent)
    namespace: dict = {"__name__": "readme"}
    for i, block in enumerate(python_blocks(README.read_text())):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - name the block that broke
            pytest.fail(f"README python block {i + 1} raised {type(err).__name__}: {err}")
    out = capsys.readouterr().out
    assert "mention rate" in out and "P(wolf)" in out  # the blocks got to their last lines
    assert 0.0 <= namespace["before"] <= 1.0 and 0.0 <= namespace["after"] <= 1.0
