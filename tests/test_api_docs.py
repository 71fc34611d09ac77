"""The API reference (``./dev.sh docs``) builds from the docstrings and shows the public API."""

from __future__ import annotations

import html
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cubehub


@pytest.mark.slow
def test_api_reference_documents_every_exported_name(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pdoc",
            "--docformat",
            "google",
            "--output-directory",
            str(tmp_path),
            "cubehub",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    page = (tmp_path / "cubehub.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for name in cubehub.__all__:
        assert f'id="{name}"' in page, f"{name} has no entry in the API reference"
        doc = inspect.getdoc(getattr(cubehub, name)) if name != "__version__" else None
        if doc:  # its summary line is on the page, as written
            assert doc.splitlines()[0] in text, name
    # Google-style sections are rendered as sections, not as plain text.
    assert 'id="arguments"' in page and 'id="raises"' in page
