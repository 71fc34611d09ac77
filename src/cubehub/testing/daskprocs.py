"""A real multi-process Dask cluster on loopback, started with the ``dask`` command line.

:func:`dask_processes` starts ``dask scheduler`` and ``dask worker`` processes exactly as an
operator would on separate machines (each worker behind its nanny, which restarts it if it
dies), each in a process group of its own, and kills every group on exit, also on error.
Tests use it for the ``address`` backend, for killing workers mid-job and for workers
started with a different environment.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cubehub.config import LOOPBACK
from cubehub.demo.servers import free_port, start_server_process, stop_process
from cubehub.errors import ServerError


def dask_executable() -> str:
    """The ``dask`` command of this environment (next to this Python), else the one on PATH."""
    beside = Path(sys.executable).parent / "dask"
    found = str(beside) if beside.exists() else shutil.which("dask")
    if found is None:
        raise ServerError("the `dask` command is not installed; install distributed")
    return found


@dataclass
class DaskProcesses:
    """A running scheduler and its worker processes (see :func:`dask_processes`)."""

    address: str
    scheduler: subprocess.Popen[bytes]
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(
        self, env: Mapping[str, str] | None = None, nthreads: int = 1
    ) -> subprocess.Popen[bytes]:
        """Start one more ``dask worker`` (with its nanny); ``env`` replaces the environment."""
        log = self.log_dir / f"worker-{len(self.workers)}.log"
        with log.open("wb") as out:
            process = start_server_process(
                [
                    dask_executable(),
                    "worker",
                    self.address,
                    "--host",
                    LOOPBACK,
                    "--nthreads",
                    str(nthreads),
                    "--no-dashboard",
                ],
                out,
                env,
            )
        self.workers.append(process)
        return process

    def pids(self) -> list[int]:
        """Process ids of the scheduler, the nannies and everything they started."""
        import psutil

        found = []
        for process in (self.scheduler, *self.workers):
            try:
                parent = psutil.Process(process.pid)
                found += [parent.pid, *(c.pid for c in parent.children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self) -> None:
        """Kill every process group: workers first, then the scheduler."""
        for process in (*self.workers, self.scheduler):
            stop_process(process, grace=5.0)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(
                f"dask scheduler exited with code {process.returncode}: {log.read_text()[-500:]}"
            )
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise ServerError(f"dask scheduler did not listen on port {port} within {timeout:.0f} s")


@contextmanager
def dask_processes(
    log_dir: Path,
    n_workers: int = 2,
    *,
    nthreads: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[DaskProcesses]:
    """Run ``dask scheduler`` and ``n_workers`` ``dask worker`` processes on 127.0.0.1.

    Args:
        log_dir: where each process's output goes (``scheduler.log``, ``worker-<k>.log``).
        n_workers: worker processes, each with one nanny; default 2.
        nthreads: threads per worker, default 1.
        env: environment of the workers (default: this process's).
        timeout: seconds to wait for the scheduler to listen.

    The caller waits for the workers (e.g. ``Client.wait_for_workers``).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = log_dir / "scheduler.log"
    with log.open("wb") as out:
        scheduler = start_server_process(
            [
                dask_executable(),
                "scheduler",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--no-dashboard",
            ],
            out,
        )
    procs = DaskProcesses(f"tcp://{LOOPBACK}:{port}", scheduler, log_dir)
    try:
        _wait_for_port(port, scheduler, log, timeout)
        for _ in range(n_workers):
            procs.start_worker(env, nthreads)
        yield procs
    finally:
        procs.stop()
