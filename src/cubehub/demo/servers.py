"""Real servers on loopback for the demo and the tests: files over HTTP and a STAC API.

* :func:`serve_files` — a threaded HTTP server that answers ``Range`` requests (as object
  storage does), so GDAL reads COGs through ``/vsicurl`` with range requests exactly as it
  does in the cloud. It counts requests and bytes, so tests can check reads were partial.
* :func:`serve_stac_api` — ``rustac serve`` (a real STAC API in Rust) as a subprocess,
  loaded with an ItemCollection and a Collection.

Both are context managers that stop their server on exit, also on error and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cubehub.config import LOOPBACK
from cubehub.errors import InputError, ServerError

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def check_port(port: int) -> None:
    """Raise :class:`InputError` when ``port`` is outside 0..65535 or already in use.

    Port 0 means "any free port" and is always accepted.
    """
    if not 0 <= port <= 65535:
        raise InputError(
            f"port {port} is not a valid TCP port; use 1..65535, or 0 for any free port"
        )
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            raise InputError(
                f"port {port} on {LOOPBACK} is already in use; stop what uses it or choose "
                "another port (0 picks a free one)"
            ) from None


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class RequestStats:
    """Counts of what a :func:`serve_files` server answered (thread-safe)."""

    requests: int = 0
    range_requests: int = 0
    bytes_sent: int = 0
    #: The query string of every answered request ("" when none), e.g. to see SAS tokens.
    queries: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_request(self, *, ranged: bool, query: str = "") -> None:
        with self._lock:
            self.requests += 1
            self.range_requests += int(ranged)
            self.queries.append(query)

    def add_bytes(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_sent += nbytes


class _RangeRequestHandler(SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` support, like an object store."""

    stats: RequestStats

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: thousands of range reads per run

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        size = path.stat().st_size
        header = self.headers.get("Range")
        match = _RANGE.match(header.strip()) if header else None
        f = path.open("rb")
        if match is None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Length", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._remaining = size
            self._count(ranged=False)
            return f
        first, last = match.groups()
        if first == "":  # suffix range: the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start >= size or start > end:
            f.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        f.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        self._count(ranged=True)
        return f

    def _count(self, *, ranged: bool) -> None:
        # Counted before the body is sent, so a client that has its answer sees the count.
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        self.stats.add_request(ranged=ranged, query=query)

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = self._remaining
        while remaining > 0:
            chunk = source.read(min(remaining, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)
            self.stats.add_bytes(len(chunk))


@dataclass
class FileServer:
    """A running :func:`serve_files` server."""

    url: str
    root: Path
    stats: RequestStats


@contextmanager
def serve_files(root: Path, port: int = 0) -> Iterator[FileServer]:
    """Serve the files under ``root`` over HTTP on loopback, with range requests.

    Args:
        root: directory to serve.
        port: TCP port on 127.0.0.1; 0 (default) picks a free one.

    Yields:
        The server's base URL (no trailing slash), root and request counters.
    """
    check_port(port)
    stats = RequestStats()
    handler = type(
        "Handler",
        (_RangeRequestHandler,),
        {"stats": stats, "__init__": _bind_directory(root)},
    )
    httpd = ThreadingHTTPServer((LOOPBACK, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="cubehub-files", daemon=True)
    thread.start()
    try:
        yield FileServer(f"http://{LOOPBACK}:{httpd.server_address[1]}", root, stats)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _bind_directory(root: Path) -> Any:
    def __init__(self: SimpleHTTPRequestHandler, *args: Any, **kwargs: Any) -> None:
        SimpleHTTPRequestHandler.__init__(self, *args, directory=str(root), **kwargs)

    return __init__


def executable(name: str) -> str:
    """Find a console script installed next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ServerError(f"`{name}` is not installed; run `./dev.sh setup` to install the servers")
    return found


@dataclass
class StacApi:
    """A running :func:`serve_stac_api` server."""

    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def serve_stac_api(
    items: Path, collection: dict[str, Any] | None = None, port: int = 0, timeout: float = 30.0
) -> Iterator[StacApi]:
    """Run ``rustac serve`` on loopback with the items of a GeoJSON FeatureCollection.

    Args:
        items: FeatureCollection file of STAC items.
        collection: the STAC Collection the items belong to (written beside ``items``);
            without it rustac creates one from the items.
        port: TCP port; 0 (default) picks a free one.
        timeout: seconds to wait for the API to answer, default 30.
    """
    check_port(port)
    port = port or free_port()
    args = [executable("rustac"), "serve", "--addr", f"{LOOPBACK}:{port}"]
    if collection is not None:
        collection_file = items.with_name(f"{items.stem}.collection.json")
        collection_file.write_text(json.dumps(collection))
        args.append(str(collection_file))
    else:
        args.append("--create-collections")
    args.append(str(items))
    log = items.with_name(f"{items.stem}.rustac.log")
    with log.open("wb") as log_file:
        process = start_server_process(args, log_file)
    url = f"http://{LOOPBACK}:{port}"
    try:
        _wait_until_up(url, process, timeout, log)
        yield StacApi(url, process)
    finally:
        stop_process(process)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(
                f"the STAC API server exited with code {process.returncode}: "
                f"{log.read_text(errors='replace').strip()[-500:]}"
            )
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise ServerError(f"the STAC API server did not answer at {url} within {timeout:.0f} s")


def _die_with_parent() -> None:
    """In the child, before exec: its own session (so Ctrl-C in the terminal reaches only
    us, and we stop it in order), and SIGKILL when the parent dies, so that not even a
    SIGKILLed parent leaves a server behind (Linux prctl PR_SET_PDEATHSIG)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def start_server_process(
    args: list[str], log_file: Any, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server subprocess that stops when :func:`stop_process` or its parent's death says so.

    Every server cubehub starts (STAC API, S3, Dask scheduler and workers) starts here.
    ``env`` replaces the environment when given.
    """
    return subprocess.Popen(
        args,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        preexec_fn=_die_with_parent,
    )


def stop_process(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Terminate a server process (its whole process group), killing it after ``grace`` s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass
