"""Reads against the physical limit: raw GDAL decode, the cube, the composite and peers.

Writes Landsat-like COGs (uint16, DEFLATE, 512 px blocks, EPSG:32613, 30 m, pixel edges at
15 m mod 30 m as Landsat's; ``--bands`` reflectance bands and ``qa_pixel``, dates spread
over one ODSE year) for each ``--shapes`` entry, and times on the same files, local and
served over HTTP range requests (GDAL ``/vsicurl``, as in the cloud), in one process:

* raw rasterio, 1 and 2 threads: each file opened and read whole, no Dask (the floor of
  decoding; 2 threads read two files at a time);
* the cube (``load_cube`` on a grid anchored to the scenes, read and summed), with
  ``cubehub.read.native`` true (plain windowed reads, handles kept per thread) and false
  (stackstac's WarpedVRT for every file);
* cubehub's composite: :func:`cubehub.composite.seasonal_composite` (the function the
  pipeline's tiles use) of that cube, p25/p50/p75 of every band for the four ODSE seasons,
  QA_PIXEL masking, computed and every layer summed (never gathered in memory, as a job
  writes it chunk by chunk; not written);
* stackstac + xarray.quantile: the Pangeo recipe for the same composite (float64, NaN
  fill, mask with ``where``, ``groupby(season).quantile``), computed and summed alike;
* odc-stac's loader: ``odc.stac.load`` on the same grid, read and summed (when installed).

All on dask's threaded scheduler with ``--threads`` workers. The output grid is the scenes'
extent less 7 pixels each side, as a tile inside a scene is (a grid exactly the file's
extent is read without a VRT by stackstac too). Prints seconds (best of ``--repeat``),
Mpx/s of decoded pixels (dates x assets x grid pixels, the same for every row), the
throughput as a fraction of raw decode with 2 threads, and the peak RSS of this process
above its level before the row. Each run reads the files under new names (hard links), so
no dataset handle, GDAL block cache or ``/vsicurl`` cache of an earlier run helps it; the
OS page cache does, for all alike.

Run: ``.venv/bin/python benchmarks/bench_read.py`` (2048 px x 18 dates x 4 bands and 512 px
x 73 dates x 6 bands); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pystac
import rasterio
import stackstac
import xarray as xr
from pyproj import Transformer
from rasterio.transform import from_origin

from cubehub import config
from cubehub.catalog.items import normalize_items
from cubehub.catalog.profile_match import profile_for
from cubehub.composite import seasonal_composite
from cubehub.cube import load_cube
from cubehub.demo.servers import serve_files
from cubehub.grid import OutputGrid
from cubehub.seasons import odse_quarters
from cubehub.testing.catalog import box_item
from cubehub.testing.memory import PeakMemory

try:
    import odc.stac as odc_stac
    from odc.geo.geobox import GeoBox
except ImportError:  # odc-stac is optional here: its row is left out
    odc_stac = None

EPSG, RES = 32613, 30.0
X0, Y1 = 539_085.0, 4_491_915.0  # a Landsat corner: 15 m mod 30 m
BANDS = ["blue", "green", "red", "nir08", "swir16", "swir22"]
MASK, MASK_NODATA = "qa_pixel", 1
#: QA_PIXEL values: clear land (bit 6), and cloud with high confidence (bits 3, 8-9).
CLEAR_QA, CLOUD_QA = 21824, 22280
#: QA_PIXEL bits 0-5: fill, dilated cloud, cirrus, cloud, cloud shadow, snow.
REJECT_BITS = 0b111111
YEAR = 2023  # ODSE year: 2022-12-02 .. 2023-12-01
INSET = 7


@dataclass(frozen=True)
class Shape:
    """One archive: ``size`` px a side, ``dates`` scenes, ``bands`` reflectance bands + mask."""

    size: int
    dates: int
    bands: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        size, dates, bands = (int(v) for v in text.lower().split("x"))
        if not (size > 2 * INSET and dates > 0 and 1 <= bands <= len(BANDS)):
            raise SystemExit(f"shape {text!r}: want SIZExDATESxBANDS, bands 1..{len(BANDS)}")
        return cls(size, dates, bands)

    @property
    def band_names(self) -> list[str]:
        return BANDS[: self.bands]

    def grid(self) -> OutputGrid:
        """The scenes' grid less ``INSET`` pixels each side, as a tile inside a scene is."""
        side = (self.size - 2 * INSET) * RES
        west, north = X0 + INSET * RES, Y1 - INSET * RES
        return OutputGrid(EPSG, RES, (west, north - side, west + side, north))


def write_scenes(root: Path, shape: Shape) -> list[dict[str, Any]]:
    """COGs and Earth Search landsat-c2-l2 style items for them, dates spread over the year."""
    size = shape.size
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(X0, Y1 - size * RES, X0 + size * RES, Y1)
    rng = np.random.default_rng(0)
    first = datetime(YEAR - 1, 12, 3, 17, tzinfo=UTC)
    step = 363 / shape.dates
    items = []
    for k in range(shape.dates):
        when = first + timedelta(days=int(k * step))
        item_id = f"LC08_L2SP_033032_{when:%Y%m%d}_02_T1"
        assets = {}
        for asset in [*shape.band_names, MASK]:
            path = root / f"{item_id}_{asset}.tif"
            if not path.exists():
                if asset == MASK:
                    data = rng.choice(
                        np.array([CLEAR_QA, CLOUD_QA], np.uint16), (size, size), p=[0.7, 0.3]
                    )
                else:
                    data = rng.integers(7000, 30000, (size, size), dtype=np.uint16)
                data[:, : size // 10] = MASK_NODATA if asset == MASK else 0  # the swath edge
                with rasterio.open(
                    path, "w", driver="COG", width=size, height=size, count=1, dtype="uint16",
                    crs=f"EPSG:{EPSG}", transform=from_origin(X0, Y1, RES, RES),
                    nodata=MASK_NODATA if asset == MASK else 0, blocksize=512, compress="DEFLATE",
                ) as dst:  # fmt: skip
                    dst.write(data, 1)
            assets[asset] = {
                "href": path.name,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "eo:bands": [] if asset == MASK else [{"name": asset, "common_name": asset}],
                "raster:bands": [{"nodata": MASK_NODATA, "data_type": "uint16"}]
                if asset == MASK
                else [{"nodata": 0, "data_type": "uint16", "scale": 2.75e-05, "offset": -0.2}],
            }
        properties = {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": "landsat-8",
            "landsat:wrs_path": "033",
            "landsat:wrs_row": "032",
            "proj:epsg": EPSG,
            "proj:shape": [size, size],
            "proj:transform": [RES, 0.0, X0, 0.0, -RES, Y1],
        }
        items.append(
            box_item(item_id, "landsat-c2-l2", (west, south, east, north), properties, assets)
        )
    return items


def with_base(items: list[dict[str, Any]], base: str, assets: list[str]) -> list[dict[str, Any]]:
    """The items with only ``assets`` (bands and mask), their hrefs under ``base``."""
    return [
        {
            **i,
            "assets": {
                k: {**a, "href": f"{base}/{a['href']}"}
                for k, a in i["assets"].items()
                if k in assets
            },
        }
        for i in items
    ]


def sums(ds: xr.Dataset) -> list[Any]:
    """Lazy sums of every variable, in uint64 without a uint64 copy: decode-only."""
    return [ds[name].data.sum(dtype=np.uint64) for name in ds.data_vars]


def nansums(ds: xr.Dataset) -> list[Any]:
    """Lazy NaN-skipping sums of every variable: the whole composite is computed, chunk by
    chunk, without gathering its layers in memory (a job writes them chunk by chunk)."""
    return [da.nansum(ds[name].data, dtype=np.float64) for name in ds.data_vars]


class PathCounter(logging.Handler):
    """The files the reader's DEBUG log says it read natively."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.native: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("native read of "):
            self.native.add(str(record.args[0]) if isinstance(record.args, tuple) else "")


def fresh_names(root: Path, files: list[str]) -> str:
    """A new folder of hard links to ``files``: new paths and URLs, so no handle, GDAL block
    cache or ``/vsicurl`` cache of an earlier run is reused (the OS page cache is)."""
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    for name in files:
        os.link(root / name, folder / name)
    return folder.name


def best(
    prepare: Callable[[str], Callable[[], Any]],
    base: str,
    root: Path,
    files: list[str],
    repeat: int,
) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs, each on fresh names under ``base`` (``prepare``
    untimed), and the largest peak RSS above the level before a run, MiB."""
    times, peaks = [], []
    for _ in range(repeat):
        run = prepare(f"{base}/{fresh_names(root, files)}")
        gc.collect()
        with PeakMemory() as memory:
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        peaks.append(memory.max_above_idle_mib())
    return min(times), max(peaks)


class Runs:
    """The rows of one shape: each a function of the files' base path or URL."""

    def __init__(
        self, items: list[dict[str, Any]], shape: Shape, grid: OutputGrid, chunk: int, threads: int
    ) -> None:
        self.items, self.shape, self.grid = items, shape, grid
        self.chunk, self.threads = chunk, threads
        self.assets = [*shape.band_names, MASK]
        self.profile = profile_for("earth-search/landsat-c2-l2")

    def scheduler(self) -> Any:
        return dask.config.set(scheduler="threads", num_workers=self.threads)

    def raw(self, base: str, threads: int) -> Callable[[], int]:
        """Every file read whole by rasterio on ``threads`` threads; the run returns the
        pixel sum."""
        hrefs = [
            a["href"]
            for i in with_base(self.items, base, self.assets)
            for a in i["assets"].values()
        ]
        env = config.gdal_env()  # the cube's GDAL settings

        def read(href: str) -> int:
            with rasterio.Env(**env), rasterio.open(href) as src:
                return int(src.read(1).sum(dtype=np.uint64))

        def run() -> int:
            with ThreadPoolExecutor(threads) as pool:
                return sum(pool.map(read, hrefs))

        return run

    def cube(self, base: str, native: bool = True) -> xr.Dataset:
        normalised = normalize_items(
            with_base(self.items, base, self.assets),
            bands=self.shape.band_names,
            profile=self.profile,
        )
        with dask.config.set({"cubehub.read.native": native}):  # read when the cube is built
            return load_cube(normalised, self.shape.band_names, self.grid, chunk_size=self.chunk)

    def cube_sum(self, base: str, native: bool) -> Callable[[], None]:
        cube = self.cube(base, native)

        def run() -> None:
            with self.scheduler():
                dask.compute(*sums(cube))

        return run

    def composite(self, base: str) -> Callable[[], None]:
        composite = seasonal_composite(self.cube(base), odse_quarters([YEAR]))

        def run() -> None:
            with self.scheduler():
                dask.compute(*nansums(composite))

        return run

    def pangeo(self, base: str) -> Callable[[], None]:
        """What a Pangeo user writes with stackstac + xarray for the same composite."""
        items = [pystac.Item.from_dict(i) for i in with_base(self.items, base, self.assets)]
        stack = stackstac.stack(
            items, assets=self.assets, epsg=EPSG, resolution=RES, bounds=self.grid.bounds,
            snap_bounds=False, chunksize=self.chunk,
        )  # fmt: skip
        qa = stack.sel(band=MASK).fillna(MASK_NODATA).astype(np.uint16)
        refl = stack.sel(band=self.shape.band_names).where((qa & REJECT_BITS) == 0)
        calendar = odse_quarters([YEAR])
        labels = np.array([w.label for w in calendar.windows])[calendar.assign(stack.time.values)]
        season = xr.DataArray(labels, dims="time", coords={"time": stack.time}, name="season")
        composite = refl.groupby(season).quantile([0.25, 0.5, 0.75], dim="time")

        def run() -> None:
            with self.scheduler():
                dask.compute(*nansums(composite.to_dataset(name="composite")))

        return run

    def odc(self, base: str) -> Callable[[], None]:
        assert odc_stac is not None
        items = [pystac.Item.from_dict(i) for i in with_base(self.items, base, self.assets)]
        xmin, ymin, xmax, ymax = self.grid.bounds
        shape = (round((ymax - ymin) / RES), round((xmax - xmin) / RES))
        geobox = GeoBox(shape, from_origin(xmin, ymax, RES, RES), f"EPSG:{EPSG}")
        loaded = odc_stac.load(
            items, bands=self.assets, geobox=geobox, chunks={"x": self.chunk, "y": self.chunk},
            dtype="uint16", resampling="nearest",
        )  # fmt: skip

        def run() -> None:
            with self.scheduler():
                dask.compute(*sums(loaded))

        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", default="2048x18x4,512x73x6",
        help="archives, SIZExDATESxBANDS, comma-separated (2048x18x4,512x73x6)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smoke run: --shapes 256x8x2")
    parser.add_argument("--where", default="local,http", help="local, http or both (local,http)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best kept (1)")
    parser.add_argument("--chunk", type=int, default=512, help="cube chunk edge, pixels (512)")
    parser.add_argument("--threads", type=int, default=2, help="dask threads (2)")
    parser.add_argument(
        "--rows", default="",
        help="only the rows whose names start with these, comma-separated (default all; "
        "the raw 2-thread row always runs, every ratio is against it)",
    )  # fmt: skip
    args = parser.parse_args()
    shapes = [Shape.parse(s) for s in ("256x8x2" if args.quick else args.shapes).split(",")]
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, {os.cpu_count()} CPUs")
    paths = PathCounter()
    logging.getLogger("cubehub.reader").addHandler(paths)
    logging.getLogger("cubehub.reader").setLevel(logging.DEBUG)
    for shape in shapes:
        root = Path(tempfile.gettempdir()) / f"cubehub-bench-read-{shape.size}x{shape.dates}"
        root.mkdir(exist_ok=True)
        items = write_scenes(root, shape)
        side = shape.size - 2 * INSET
        runs = Runs(items, shape, shape.grid(), args.chunk, args.threads)
        names = [i["assets"][a]["href"] for i in items for a in runs.assets]
        decoded_px = len(names) * side * side
        # numba compiles the percentile kernel on first use: not what is measured.
        with runs.scheduler():
            seasonal_composite(
                runs.cube(str(root)).isel(x=slice(0, 32), y=slice(0, 32)), odse_quarters([YEAR])
            ).compute()
        print(
            f"\n{shape.dates} dates x ({shape.bands} bands + {MASK}) of {shape.size}^2 px, "
            f"grid {side}^2 px, chunks {args.chunk}, {args.threads} threads; best of {args.repeat}; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'where':6} {'run':34} {'s':>7} {'Mpx/s':>7} {'x raw2':>6} {'peak MiB':>8} {'native':>11}"
        )
        with serve_files(root) as files:
            for where, base in (("local", str(root)), ("http", files.url)):
                if where not in args.where.split(","):
                    continue
                rows: list[tuple[str, Callable[[str], Callable[[], None]]]] = [
                    ("raw rasterio, 2 threads", functools.partial(runs.raw, threads=2)),
                    ("raw rasterio, 1 thread", functools.partial(runs.raw, threads=1)),
                    ("cube decode, native read", functools.partial(runs.cube_sum, native=True)),
                    ("cube decode, warped read", functools.partial(runs.cube_sum, native=False)),
                    ("cubehub composite p25/50/75 x 4", runs.composite),
                    ("stackstac + xarray.quantile", runs.pangeo),
                ]
                if odc_stac is not None:
                    rows.append(("odc.stac.load decode", runs.odc))
                wanted = [w for w in args.rows.split(",") if w]
                rows = [
                    (name, prepare)
                    for name, prepare in rows
                    if name == "raw rasterio, 2 threads"
                    or not wanted
                    or any(name.startswith(w) for w in wanted)
                ]
                seconds: dict[str, float] = {}
                for name, prepare in rows:
                    paths.native.clear()
                    seconds[name], peak = best(prepare, base, root, names, args.repeat)
                    native = len(paths.native) // args.repeat
                    ratio = (
                        seconds["raw rasterio, 2 threads"] / seconds[name]
                        if "raw rasterio, 2 threads" in seconds
                        else float("nan")
                    )
                    print(
                        f"{where:6} {name:34} {seconds[name]:7.2f} {decoded_px / seconds[name] / 1e6:7.1f} "
                        f"{ratio:6.2f} {peak:8.0f} {native:>4} of {len(names)}",
                        flush=True,
                    )
                ours = seconds.get("cubehub composite p25/50/75 x 4", float("nan"))
                pangeo = seconds.get("stackstac + xarray.quantile", float("nan"))
                print(
                    f"{where:6} composite / raw 2 threads throughput "
                    f"{seconds['raw rasterio, 2 threads'] / ours:.2f}; speed-up over stackstac + "
                    f"xarray.quantile {pangeo / ours:.1f}x"
                )
        for folder in root.glob("run-*"):
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
