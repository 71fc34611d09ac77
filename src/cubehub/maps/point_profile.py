"""A pixel's seasonal profile: every variable's percentiles and the clear-observation count
in every season, with the season dates and whether its tile is complete."""

from __future__ import annotations

from typing import Any

import numpy as np
from dask.base import compute

from cubehub.grid import SPATIAL_DIMS, pixel_index
from cubehub.maps.layers import ServedStore

__all__ = ["pixel_profile"]


def pixel_profile(store: ServedStore, lon: float, lat: float) -> dict[str, Any] | None:
    """The profile of the pixel at (lon, lat) in degrees, or None off the grid.

    Values are decoded (reflectance, index, count); ``null`` where the store has none (no
    clear observation, or a tile not complete in that season).
    """
    rows, cols = pixel_index([lon], [lat], 4326, store.crs, store.transform, store.shape)
    row, col = int(rows[0]), int(cols[0])
    if row < 0:
        return None
    ds = store.dataset()
    names = list(store.styles)
    picked = ds[names].isel(y=row, x=col)
    (values,) = compute(picked)
    variables: dict[str, Any] = {}
    for name in names:
        data = np.asarray(values[name].values, dtype=np.float64)  # (season[, percentile])
        variables[name] = {
            **store.styles[name].to_json(),
            "by_percentile": "percentile" in ds[name].dims,
            "values": [[_number(v) for v in np.atleast_1d(row_)] for row_ in data],
        }
    x, y = (float(ds[d].values[i]) for d, i in zip(SPATIAL_DIMS[::-1], (col, row), strict=True))
    return {
        "store": store.name,
        "lon": lon,
        "lat": lat,
        "row": row,
        "col": col,
        "x": x,
        "y": y,
        "crs": store.crs.to_string(),
        "percentiles": store.percentiles,
        "seasons": [
            {**season, "complete": bool(c)}
            for season, c in zip(store.seasons, values["complete"].values, strict=True)
        ],
        "variables": variables,
    }


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
