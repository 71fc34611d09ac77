"""A script that starts a local cluster without ``if __name__ == "__main__":`` is told so."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BODY = """
import cubehub

def main():
    with cubehub.cluster("local", n_workers=1, threads_per_worker=1) as client:
        print("workers:", len(client.scheduler_info()["workers"]))
"""


def _run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=script.parent,
    )


@pytest.mark.parametrize("tail", ["main()\n", "with cubehub.cluster('local') as c:\n    pass\n"])
def test_an_unguarded_script_is_refused_before_any_worker_starts(tmp_path: Path, tail: str) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(BODY) + tail)
    done = _run(script)
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr and "job.py, line" in done.stderr
    assert "Nanny failed to start" not in done.stderr and "bootstrapping" not in done.stderr


def test_a_guarded_script_runs(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(BODY) + 'if __name__ == "__main__":\n    main()\n')
    done = _run(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "workers: 1"
