"""Peak memory of Dask worker processes while something runs, for benchmarks."""

from __future__ import annotations

import threading
import time

import psutil
from distributed import Client

__all__ = ["PeakMemory"]


class PeakMemory:
    """Samples the RSS of every worker process every 100 ms; reports the peak above idle.

    ``client``: the cluster whose workers are sampled; None: this process alone (dask's
    threaded scheduler, a plain loop).

    Example:
        >>> with PeakMemory(client) as memory:  # doctest: +SKIP
        ...     run_job(job, client)
        >>> memory.max_above_idle_mib()  # doctest: +SKIP
    """

    def __init__(self, client: Client | None = None) -> None:
        pids = (
            client.run(lambda: psutil.Process().pid)
            if client is not None
            else {"this process": psutil.Process().pid}
        )
        self.procs = {addr: psutil.Process(pid) for addr, pid in pids.items()}
        self.idle = {a: p.memory_info().rss for a, p in self.procs.items()}
        self.peak = dict(self.idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for addr, proc in self.procs.items():
                self.peak[addr] = max(self.peak[addr], proc.memory_info().rss)
            time.sleep(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def max_above_idle_mib(self) -> float:
        """The largest peak RSS above idle of any one worker, MiB."""
        return float(max(self.peak[a] - self.idle[a] for a in self.procs)) / 2**20

    def max_mib(self) -> float:
        """The largest peak RSS of any one worker, MiB."""
        return float(max(self.peak.values())) / 2**20
