"""cubehub.testing.memory.PeakMemory: the peak RSS of this process or of Dask workers."""

from __future__ import annotations

import time

import numpy as np

from cubehub.testing.memory import PeakMemory


def test_peak_memory_of_this_process_sees_an_allocation() -> None:
    with PeakMemory() as memory:
        block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MiB, touched
        time.sleep(0.3)  # held while sampled, every 100 ms
        assert block.sum() == block.size
    assert 150 < memory.max_above_idle_mib() < 1000
    assert memory.max_mib() >= memory.max_above_idle_mib()
