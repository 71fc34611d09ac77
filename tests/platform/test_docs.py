"""The Python that the deployment guide, the README and the chart's NOTES tell users to type
imports, and names only what cubehub has."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import helm_python as helm
import pytest
from chart_helpers import ROOT, TEST_INSTALL

DOCS = [ROOT / "docs" / "deploy.md", ROOT / "README.md"]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def _check(code: str, where: str) -> None:
    """Every import line runs, and every ``cubehub.NAME(...)`` called exists."""
    lines = [
        line.strip() for line in code.splitlines() if re.match(r"\s*(import|from)\s+\S+", line)
    ]
    assert lines, f"{where}: no import in {code!r}"
    for line in lines:
        exec(compile(line, where, "exec"), {})
    cubehub = importlib.import_module("cubehub")
    for name in set(re.findall(r"(?<![\w/.-])cubehub\.(\w+)\(", code)):
        assert hasattr(cubehub, name), f"{where}: cubehub has no {name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_code_in_the_docs_imports(doc: Path) -> None:
    blocks = _python_blocks(doc.read_text())
    assert blocks
    for index, block in enumerate(blocks):
        _check(block, f"{doc.name} block {index}")


def test_code_in_the_notes_imports(chart: helm.Chart) -> None:
    notes = chart.render(TEST_INSTALL, name="eo", namespace="cubehub")[
        "cubehub/templates/NOTES.txt"
    ]
    start = notes.index("start your own Dask cluster:")
    snippet = notes[start:].split("\n", 1)[1].split("Clusters idle")[0]
    _check(snippet, "NOTES.txt")
