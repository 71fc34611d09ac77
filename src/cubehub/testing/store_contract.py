"""The contract every composite store kind keeps, as a test suite to subclass (like
zarr-python's ``StoreTests``): writing tiles, hiding unrecorded ones, resuming, refusing a
store made by another job without touching it, appending seasons, overwriting, tiles
written without some of their assets.

Subclass :class:`StoreContract`, set :attr:`~StoreContract.store_kind` (and
:attr:`~StoreContract.zarr_format`), and pytest runs every ``test_*`` method against that
kind through :func:`cubehub.output.open.open_store` and
:func:`cubehub.output.open.open_composite`, the functions the pipeline and readers use.
The synthetic composites come from :func:`synthetic_composite`: 64 x 64 px of 10 m in
UTM 33N, chunks of 16 px, tiles of 32 px (four tiles).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from dask.base import compute

from cubehub.errors import StoreMismatchError
from cubehub.grid import OutputGrid
from cubehub.output.encoding import encode_composite, provenance_attrs
from cubehub.output.info import describe_store
from cubehub.output.layout import StoreKind, TileStore
from cubehub.output.open import open_composite, open_store
from cubehub.pipeline import template
from cubehub.seasons import odse_quarters
from cubehub.tiles import Tile, split_grid

__all__ = [
    "CHUNK",
    "SIZE",
    "TILE",
    "StoreContract",
    "grid_of",
    "race_to_create",
    "synthetic_composite",
    "write_tile",
]

SIZE, CHUNK, TILE = 64, 16, 32
X0, Y1 = 560_000.0, 5_230_000.0
#: Half a DN of reflectance (scale 1e-4): how close a stored value is to the computed one.
HALF_DN = 0.5e-4


def synthetic_composite(
    years: tuple[int, ...] = (2022,),
    *,
    epsg: int = 32633,
    bands: tuple[str, ...] = ("red", "nir"),
    x0: float = X0,
    seed: int = 0,
    job: dict[str, Any] | None = None,
    chunk: int = CHUNK,
) -> xr.Dataset:
    """A lazy, encoded composite over the whole synthetic grid, shaped as the pipeline makes
    it: reflectance bands (with a NaN corner: no clear observation), NDVI and valid_count;
    ``chunk`` px chunks (default 16)."""
    calendar = odse_quarters(years)
    rng = np.random.default_rng(seed)
    n_s, q = len(calendar.windows), [25.0, 50.0, 75.0]
    shape = (n_s, len(q), SIZE, SIZE)
    data: dict[str, Any] = {}
    for band in bands:
        values = np.round(rng.uniform(0.01, 0.5, shape), 4).astype(np.float32)
        values[..., :3, :5] = np.nan
        data[band] = (("season", "percentile", "y", "x"), values)
    data["NDVI"] = (
        ("season", "percentile", "y", "x"),
        rng.uniform(-1, 1, shape).astype(np.float32),
    )
    data["valid_count"] = (
        ("season", "y", "x"),
        rng.integers(0, 20, (n_s, SIZE, SIZE)).astype(np.uint16),
    )
    centres = (np.arange(SIZE) + 0.5) * 10.0
    ds = xr.Dataset(
        data,
        coords={
            "season": [w.label for w in calendar.windows],
            "season_start": (
                "season",
                np.array([w.start for w in calendar.windows], dtype="datetime64[ns]"),
            ),
            "season_end": (
                "season",
                np.array([w.end for w in calendar.windows], dtype="datetime64[ns]"),
            ),
            "percentile": q,
            "y": Y1 - centres,
            "x": x0 + centres,
        },
    ).chunk({"season": 1, "percentile": -1, "y": chunk, "x": chunk})
    ds = ds.rio.write_crs(epsg).rio.write_coordinate_system()
    ds = encode_composite(ds, {b: (1e-4, -0.1) for b in bands})
    ds.attrs.update(
        provenance_attrs(job or {"method": "linear", "min_count": 1}, "sentinel-2-l2a", ["item-a"])
    )
    return ds


def grid_of(ds: xr.Dataset) -> OutputGrid:
    """The output grid of a :func:`synthetic_composite`."""
    x0 = float(ds.x.values[0]) - 5.0
    return OutputGrid(int(ds.rio.crs.to_epsg()), 10.0, (x0, Y1 - SIZE * 10.0, x0 + SIZE * 10.0, Y1))


def write_tile(store: TileStore, ds: xr.Dataset, tile: Tile, *, mark: bool = True) -> Any:
    """Write ``tile`` of ``ds`` as the pipeline does (on the synchronous scheduler)."""
    part = ds.isel(y=slice(*tile.y), x=slice(*tile.x))
    (result,) = compute(store.write_tile(part, tile), scheduler="sync")
    if mark:
        store.mark_complete(tile, result)
    return result


def race_to_create(
    url: str, writers: int = 2, storage_options: dict[str, Any] | None = None
) -> list[TileStore | BaseException]:
    """``writers`` threads that open the same new Zarr store at the same moment (a barrier
    releases them together), as writers of one job's tiles started at once do; what each
    got, a store or the error it raised."""
    ds = synthetic_composite()
    grid = grid_of(ds)
    tiles = split_grid(grid, TILE, CHUNK)
    tmpl = template(ds.isel(y=slice(0, TILE), x=slice(0, TILE)), grid, CHUNK)
    barrier = threading.Barrier(writers)
    got: list[TileStore | BaseException] = []

    def writer() -> None:
        barrier.wait()
        try:
            got.append(open_store(url, tmpl, tiles, storage_options=storage_options))
        except BaseException as exc:  # reported to the test, which names it
            got.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


class StoreContract:
    """What every store kind guarantees. Subclass and set :attr:`store_kind`."""

    store_kind: ClassVar[StoreKind]
    zarr_format: ClassVar[int] = 3

    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return str(tmp_path / "composite.store")

    def open(self, url: str, ds: xr.Dataset, **kwargs: Any) -> tuple[TileStore, list[Tile]]:
        """The job's store for ``ds`` (created or reopened) and its tiles."""
        grid = grid_of(ds)
        tiles = split_grid(grid, TILE, CHUNK)
        tmpl = template(ds.isel(y=slice(0, TILE), x=slice(0, TILE)), grid, CHUNK)
        store = open_store(
            url, tmpl, tiles, store_kind=self.store_kind, zarr_format=self.zarr_format, **kwargs
        )
        return store, tiles

    def test_a_new_store_holds_no_complete_pixel(self, url: str) -> None:
        ds = synthetic_composite()
        store, _ = self.open(url, ds)
        store.finish()
        assert store.completed_tiles() == set()
        out = open_composite(url)
        assert not bool(out["complete"].any())
        assert bool(out["red"].isnull().all()) and bool(out["valid_count"].isnull().all())

    def test_a_recorded_tile_reads_back_within_half_a_dn(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        write_tile(store, ds, tiles[0])
        store.finish()
        assert store.completed_tiles() == {tiles[0].id}
        out = open_composite(url)
        window = {"y": slice(*tiles[0].y), "x": slice(*tiles[0].x)}
        np.testing.assert_allclose(
            out["red"].isel(window), ds["red"].isel(window), atol=HALF_DN, rtol=0
        )
        np.testing.assert_array_equal(
            out["valid_count"].isel(window), ds["valid_count"].isel(window)
        )
        assert out["red"].rio.crs.to_epsg() == 32633
        others = out["red"].isel(y=slice(TILE, None))
        assert bool(others.isnull().all()), "tiles without a record read as missing"

    def test_a_tile_written_but_not_recorded_stays_hidden(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        write_tile(store, ds, tiles[1], mark=False)
        store.finish()
        out = open_composite(url)
        assert not bool(out["complete"].any()) and bool(out["nir"].isnull().all())

    def test_reopening_resumes_complete_tiles(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        write_tile(store, ds, tiles[0])
        store.finish()
        again, _ = self.open(url, ds)
        assert again.completed_tiles() == {tiles[0].id}
        write_tile(again, ds, tiles[3])
        again.finish()
        assert self.open(url, ds)[0].completed_tiles() == {tiles[0].id, tiles[3].id}

    @pytest.mark.parametrize("change", ["bands", "grid", "crs", "job"])
    def test_a_store_of_another_job_is_refused_and_kept(self, url: str, change: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        write_tile(store, ds, tiles[0])
        store.finish()
        before = open_composite(url)["red"].values
        other = {
            "bands": lambda: synthetic_composite(bands=("red", "green")),
            "grid": lambda: synthetic_composite(x0=X0 + 640.0),
            "crs": lambda: synthetic_composite(epsg=32632),
            "job": lambda: synthetic_composite(job={"method": "nearest", "min_count": 1}),
        }[change]()
        with pytest.raises(StoreMismatchError, match="different job"):
            self.open(url, other)
        after = open_composite(url)["red"].values
        np.testing.assert_array_equal(before, after)

    def test_overwrite_replaces_a_store_of_another_job(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        write_tile(store, ds, tiles[0])
        store.finish()
        other = synthetic_composite(bands=("green",), seed=1)
        replaced, _ = self.open(url, other, overwrite=True)
        assert replaced.completed_tiles() == set()
        replaced.finish()
        assert set(open_composite(url).data_vars) == {"green", "NDVI", "valid_count"}

    def test_a_later_year_is_appended_and_complete_seasons_kept(self, url: str) -> None:
        first = synthetic_composite((2022,))
        store, tiles = self.open(url, first)
        write_tile(store, first, tiles[0])
        store.finish()
        both = synthetic_composite(
            (2022, 2023), seed=7
        )  # other values: complete seasons must not change
        extended, _ = self.open(url, both)
        assert extended.completed_tiles() == set(), "the new seasons of tile 0 are still to do"
        write_tile(extended, both, tiles[0])
        extended.finish()
        out = open_composite(url)
        assert [str(s) for s in out["season"].values] == [str(s) for s in both["season"].values]
        window = {"y": slice(*tiles[0].y), "x": slice(*tiles[0].x)}
        old = out["red"].isel(season=slice(0, 4)).isel(window)
        np.testing.assert_allclose(old, first["red"].isel(window), atol=HALF_DN, rtol=0)
        new = out["red"].isel(season=slice(4, 8)).isel(window)
        np.testing.assert_allclose(
            new, both["red"].isel(season=slice(4, 8)).isel(window), atol=HALF_DN, rtol=0
        )
        assert bool(out["complete"].isel(season=slice(4, 8)).isel(window).all())

    def test_an_earlier_year_cannot_be_appended(self, url: str) -> None:
        store, _ = self.open(url, synthetic_composite((2023,)))
        store.finish()
        with pytest.raises(StoreMismatchError, match="only later seasons"):
            self.open(url, synthetic_composite((2022, 2023)))

    def test_a_tile_written_without_some_assets_is_shown_and_written_again(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        lacking = ["http://archive.example/S2B_20220119/B04.tif"]
        result = write_tile(store, ds, tiles[0], mark=False)
        store.mark_complete(tiles[0], result, lacking)
        store.finish()
        window = {"y": slice(*tiles[0].y), "x": slice(*tiles[0].x)}
        assert bool(open_composite(url)["complete"].isel(window).all()), "its pixels are shown"
        assert describe_store(url).missing_assets == {tiles[0].id: lacking}
        # The next run writes it again, every season (other values, to tell them apart).
        fixed = synthetic_composite(seed=3)
        again, _ = self.open(url, fixed)
        assert again.completed_tiles() == set()
        write_tile(again, fixed, tiles[0])
        again.finish()
        out = open_composite(url)
        np.testing.assert_allclose(
            out["red"].isel(window), fixed["red"].isel(window), atol=HALF_DN, rtol=0
        )
        assert self.open(url, fixed)[0].completed_tiles() == {tiles[0].id}
        assert describe_store(url).missing_assets == {}

    def test_forgotten_seasons_are_hidden_until_written_again(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        for tile in tiles[:2]:
            write_tile(store, ds, tile)
        store.finish()
        again, _ = self.open(url, ds)
        again.forget(["2022-summer"])
        again.finish()
        out = open_composite(url)
        assert not bool(out["complete"].sel(season="2022-summer").any())
        assert bool(out["red"].sel(season="2022-summer").isnull().all())
        kept = {"season": "2022-spring", "y": slice(*tiles[0].y), "x": slice(*tiles[0].x)}
        assert bool(out["complete"].sel(kept).all())
        third, _ = self.open(url, ds)
        assert third.completed_tiles() == set()
        other = synthetic_composite(seed=3)
        write_tile(third, other, tiles[0])  # only the forgotten season is written again
        third.finish()
        out = open_composite(url)
        window = {"y": slice(*tiles[0].y), "x": slice(*tiles[0].x)}
        np.testing.assert_allclose(
            out["red"].sel(season="2022-summer").isel(window),
            other["red"].sel(season="2022-summer").isel(window),
            atol=HALF_DN,
            rtol=0,
        )
        np.testing.assert_allclose(
            out["red"].sel(season="2022-spring").isel(window),
            ds["red"].sel(season="2022-spring").isel(window),
            atol=HALF_DN,
            rtol=0,
        )
        assert third.completed_tiles() == {tiles[0].id}

    def test_finish_twice_is_harmless(self, url: str) -> None:
        ds = synthetic_composite()
        store, tiles = self.open(url, ds)
        write_tile(store, ds, tiles[2])
        store.finish()
        store.finish()
        assert open_composite(url)["complete"].sum() > 0
