"""The hub's Python environment for the tests: JupyterHub and KubeSpawner at the hub image's pins.

The project's own lock file holds the single-user side (the notebook image); the hub runs the
Zero to JupyterHub hub image, whose versions tests/platform/hub-requirements.txt pins. The
first test that needs it creates a virtual environment with exactly those packages (from
PyPI, about a minute) under ``.venv-hub/<hash of the pins>/`` in the checkout (git-ignored),
and every later run reuses it; a change of pins makes a new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINS = Path(__file__).with_name("hub-requirements.txt")
CACHE = ROOT / ".venv-hub"
#: Seconds the install may take (PyPI downloads of ~60 wheels).
INSTALL_TIMEOUT = 900


def hub_python() -> Path:
    """The interpreter of the hub environment, created on first use (safe across processes)."""
    digest = hashlib.sha256(PINS.read_bytes()).hexdigest()[:16]
    venv = CACHE / digest
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second test session waits for the first install
        if not stamp.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run(
                [*pip, "--no-deps", "-r", str(PINS)], check=True, timeout=INSTALL_TIMEOUT
            )
            subprocess.run([str(python), "-m", "pip", "check"], check=True, capture_output=True)
            stamp.write_text(digest)
    return python
