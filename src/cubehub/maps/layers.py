"""A store as ``cubehub serve`` serves it: its layers (one per variable x season x
percentile, named the ODSE way), tile matrix sets, styles, and a view of the store that
follows its completion records while it is being written.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from morecantile import TileMatrixSet
from pyproj import CRS

from cubehub.errors import InputError, NotFoundError
from cubehub.grid import SPATIAL_DIMS
from cubehub.maps.style import Style, style_of
from cubehub.maps.tms import WEB_MERCATOR, native_tms, web_mercator
from cubehub.output.encoding import odse_name
from cubehub.output.open import open_composite, store_records
from cubehub.seasons import odse_span

__all__ = ["Layer", "ServedStore", "store_name"]

#: Seconds between looks at a store's completion records (a listing of its record folder).
REFRESH_S = 2.0
_YEAR_LABEL = re.compile(r"^(\d{4})-(.+)$")


@dataclass(frozen=True)
class Layer:
    """One 2-D layer: a variable in one season at one percentile (None for counts)."""

    id: str
    variable: str
    season: str
    percentile: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "variable": self.variable,
            "season": self.season,
            "percentile": self.percentile,
        }


def store_name(url: str) -> str:
    """A URL-safe name for a store: its last path part without ``.zarr``."""
    stem = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr") or "store"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem)


class ServedStore:
    """A composite store opened for serving; thread-safe.

    Args:
        url: the store (local path or fsspec URL).
        name: its name in URLs, default :func:`store_name`.
        storage_options: fsspec options without secrets.
    """

    def __init__(
        self, url: str, name: str | None = None, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        self.name = name or store_name(url)
        self.options = dict(storage_options or {})
        self._lock = threading.Lock()
        self._ds = open_composite(url, self.options)
        self._records = self._record_state()
        self._checked = time.monotonic()
        ds = self._ds
        if ds.rio.crs is None:
            raise InputError(f"{url} has no CRS (spatial_ref); it cannot be drawn on a map")
        self.crs = CRS.from_user_input(ds.rio.crs)
        self.transform = ds.rio.transform()
        self.shape = (ds.sizes["y"], ds.sizes["x"])
        self.tms: dict[str, TileMatrixSet] = {WEB_MERCATOR: web_mercator()}
        native = native_tms(
            self.crs, abs(self.transform.a), (self.transform.c, self.transform.f), self.shape
        )
        self.tms[str(native.id)] = native
        self.seasons = [
            {
                "label": str(label),
                "start": str(np.datetime_as_string(start, unit="D")),
                "end": str(np.datetime_as_string(end, unit="D")),
                **_year_and_name(str(label)),
            }
            for label, start, end in zip(
                ds["season"].values, ds["season_start"].values, ds["season_end"].values, strict=True
            )
        ]
        self.percentiles = [float(q) for q in ds["percentile"].values]
        self.styles: dict[str, Style] = {
            str(n): style_of(str(n), v.attrs)
            for n, v in ds.data_vars.items()
            if {"season", *SPATIAL_DIMS} <= set(v.dims)
        }
        self.layers: dict[str, Layer] = {}
        for variable in self.styles:
            dims = ds[variable].dims
            for season in self.seasons:
                span = odse_span(np.datetime64(season["start"]), np.datetime64(season["end"]))
                qs: list[float | None] = list(self.percentiles) if "percentile" in dims else [None]
                for q in qs:
                    layer = Layer(odse_name(variable, span, q), variable, season["label"], q)
                    self.layers[layer.id] = layer

    def _record_state(self) -> dict[str, list[str]]:
        completion, _ = store_records(self.url, self.options)
        return completion.to_json()

    def dataset(self) -> xr.Dataset:
        """The store with pixels of incomplete tiles hidden, reopened when its records changed
        (looked at most every :data:`REFRESH_S` seconds)."""
        with self._lock:
            if time.monotonic() - self._checked > REFRESH_S:
                self._checked = time.monotonic()
                state = self._record_state()
                if state != self._records:
                    self._ds, self._records = open_composite(self.url, self.options), state
            return self._ds

    def layer(self, layer_id: str) -> Layer:
        try:
            return self.layers[layer_id]
        except KeyError:
            raise NotFoundError(
                f"store {self.name} has no layer {layer_id!r}; see stores.json for its layers"
            ) from None

    def layer_array(self, layer: Layer) -> xr.DataArray:
        """The layer (y, x), lazily, decoded, NaN outside complete tiles."""
        var = self.dataset()[layer.variable].sel(season=layer.season, drop=True)
        if layer.percentile is not None:
            var = var.sel(percentile=layer.percentile, drop=True)
        keep = [c for c in var.coords if set(var[c].dims) <= set(SPATIAL_DIMS)]
        return var.drop_vars([c for c in var.coords if c not in keep])

    def tile_matrix_set(self, tms_id: str) -> TileMatrixSet:
        try:
            return self.tms[tms_id]
        except KeyError:
            raise NotFoundError(
                f"unknown tile matrix set {tms_id!r}; this store has {', '.join(self.tms)}"
            ) from None

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the grid in degrees."""
        from pyproj import Transformer

        rows, cols = self.shape
        t = self.transform
        box = (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)
        west, south, east, north = Transformer.from_crs(
            self.crs, 4326, always_xy=True
        ).transform_bounds(*box, densify_pts=21)
        return west, south, east, north

    def describe(self) -> dict[str, Any]:
        """What the web page needs to know: variables and styles, seasons, percentiles, layers."""
        return {
            "name": self.name,
            "title": str(self._ds.attrs.get("title", self.name)),
            "crs": self.crs.to_string(),
            "bounds": list(self.lonlat_bounds()),
            "tile_matrix_sets": list(self.tms),
            "percentiles": self.percentiles,
            "seasons": self.seasons,
            "variables": {name: style.to_json() for name, style in self.styles.items()},
            "layers": [layer.to_json() for layer in self.layers.values()],
        }


def _year_and_name(label: str) -> dict[str, str]:
    """``2022-winter`` -> year 2022, name winter: profiles draw one line per year."""
    match = _YEAR_LABEL.match(label)
    return {"year": match[1], "name": match[2]} if match else {"year": "", "name": label}
