"""Where the time of a cube read or composite goes: tasks per asset, task durations, cProfile.

On the files of :mod:`bench_read` (one ``--shape``, default 512 px x 73 dates x 6 bands +
``qa_pixel``, local), for the cube read and summed (``load_cube``, native reads; ``--what
cube``, the default) or the whole composite (``--what composite``: bench_read's composite
row, every layer summed):

1. the graph: tasks in all, tasks per asset read, and after ``dask.optimize`` (fusion);
2. the task stream on dask's threaded scheduler (``--threads``): wall time, and per task
   kind (its key's name) the count and the summed task seconds, against raw rasterio
   decoding the same files whole, one thread, no Dask;
3. cProfile of the same read on the synchronous scheduler (one thread, every task in this
   thread): the functions with the most cumulative time, and with the most time of their own.

Run: ``.venv/bin/python benchmarks/profile_read.py``; ``--shape 256x8x2`` for a quick look;
``--shape 2048x18x4 --what composite`` for the composite of bench_read's first shape.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import dask
import numpy as np
from bench_read import MASK, YEAR, Runs, Shape, fresh_names, nansums, sums, write_scenes
from dask.diagnostics import Profiler
from dask.utils import key_split

from cubehub.composite import seasonal_composite
from cubehub.seasons import odse_quarters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="512x73x6", help="SIZExDATESxBANDS (512x73x6)")
    parser.add_argument("--chunk", type=int, default=512, help="cube chunk edge, pixels (512)")
    parser.add_argument("--threads", type=int, default=2, help="dask threads (2)")
    parser.add_argument("--top", type=int, default=18, help="cProfile rows (18)")
    parser.add_argument(
        "--what", choices=("cube", "composite"), default="cube",
        help="the cube read and summed (default), or the whole composite",
    )  # fmt: skip
    args = parser.parse_args()
    shape = Shape.parse(args.shape)
    root = Path(tempfile.gettempdir()) / f"cubehub-bench-read-{shape.size}x{shape.dates}"
    root.mkdir(exist_ok=True)
    items = write_scenes(root, shape)
    runs = Runs(items, shape, shape.grid(), args.chunk, args.threads)
    names = [i["assets"][a]["href"] for i in items for a in runs.assets]

    def fresh() -> str:
        return str(root / fresh_names(root, names))

    def graph() -> list[Any]:
        cube = runs.cube(fresh())
        if args.what == "cube":
            return sums(cube)
        return nansums(seasonal_composite(cube, odse_quarters([YEAR])))

    def tasks_of(collections: list[Any]) -> int:
        return len({key for c in collections for key in c.__dask_graph__()})

    # numba compiles the percentile kernel on first use: not what is measured.
    with dask.config.set(scheduler="synchronous"):
        dask.compute(*graph())
    tasks, fused_tasks = tasks_of(graph()), tasks_of(list(dask.optimize(*graph())))
    print(
        f"{shape.dates} dates x ({shape.bands} bands + {MASK}) of {shape.size}^2 px, "
        f"chunks {args.chunk}: {len(names)} assets read"
    )
    print(
        f"graph: {tasks} tasks ({tasks / len(names):.1f} per asset), "
        f"{fused_tasks} after dask.optimize ({fused_tasks / len(names):.1f} per asset)"
    )

    raw = runs.raw(fresh(), threads=1)
    t0 = time.perf_counter()
    raw()
    raw_s = time.perf_counter() - t0
    print(
        f"raw rasterio, 1 thread, no Dask: {raw_s:.2f} s ({raw_s / len(names) * 1e3:.1f} ms an asset)"
    )

    total = graph()
    with runs.scheduler(), Profiler() as prof:
        t0 = time.perf_counter()
        dask.compute(*total)
        wall = time.perf_counter() - t0
    busy: dict[str, list[float]] = defaultdict(list)
    for r in prof.results:
        busy[key_split(r.key)].append(r.end_time - r.start_time)
    print(
        f"\n{args.what} computed and summed, {args.threads} threads: {wall:.2f} s wall, "
        f"{sum(map(sum, busy.values())):.2f} task-s in {len(prof.results)} tasks"
    )
    print(f"{'task kind':40} {'tasks':>6} {'task-s':>7} {'ms/task':>8}")
    for kind, durations in sorted(busy.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"{kind[:40]:40} {len(durations):6} {sum(durations):7.2f} {np.mean(durations) * 1e3:8.2f}"
        )

    total = graph()
    profiler = cProfile.Profile()
    with dask.config.set(scheduler="synchronous"):
        t0 = time.perf_counter()
        profiler.runcall(dask.compute, *total)
        sync_s = time.perf_counter() - t0
    print(f"\ncProfile, synchronous scheduler: {sync_s:.2f} s (raw decode {raw_s:.2f} s)")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    for folder in root.glob("run-*"):
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
