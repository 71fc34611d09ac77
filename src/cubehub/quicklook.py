"""PNG quicklooks of a composite: true colour and an index per season, with colour bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and workers
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from cubehub.errors import InputError

#: Reflectance mapped to full brightness in true colour (0.3 suits land surfaces).
RGB_MAX_REFLECTANCE = 0.3
_MAX_PIXELS_PLOTTED = 800


def _season_title(ds: xr.Dataset, season: str) -> str:
    start = pd.Timestamp(ds["season_start"].sel(season=season).values).date()
    end = pd.Timestamp(ds["season_end"].sel(season=season).values).date()
    return f"{season}\n{start} .. {end}"


def _thin(da: xr.DataArray) -> xr.DataArray:
    step = max(1, int(np.ceil(max(da.sizes["y"], da.sizes["x"]) / _MAX_PIXELS_PLOTTED)))
    return da.isel(y=slice(None, None, step), x=slice(None, None, step))


def write_quicklook(
    ds: xr.Dataset,
    path: Path,
    *,
    percentile: float = 50,
    rgb: Sequence[str] = ("red", "green", "blue"),
    index: str | None = "NDVI",
    seasons: Sequence[str] | None = None,
) -> Path:
    """Write a PNG with a true-colour row and an ``index`` row, one column per season.

    Args:
        ds: a composite (from the pipeline, or :func:`cubehub.store.open_composite`).
        path: PNG file to write.
        percentile: which percentile to show, default 50.
        rgb: bands for red, green and blue; None-like empty to skip the row.
        index: index variable for the second row (colour bar from -1 to 1), or None.
        seasons: season labels to show, default all.
    """
    chosen = list(seasons) if seasons else [str(s) for s in ds.season.values]
    unknown = [s for s in chosen if s not in ds.season.values]
    if unknown:
        raise InputError(f"season(s) {unknown} not in the store; it has {list(map(str, ds.season.values))}")
    if percentile not in ds.percentile.values:
        raise InputError(f"percentile {percentile} not in the store; it has {ds.percentile.values.tolist()}")
    rows = []
    if rgb:
        missing = [b for b in rgb if b not in ds]
        if missing:
            raise InputError(f"band(s) {missing} not in the store; it has {sorted(map(str, ds.data_vars))}")
        rows.append("rgb")
    if index:
        if index not in ds:
            raise InputError(f"index {index!r} not in the store; it has {sorted(map(str, ds.data_vars))}")
        rows.append(index)
    if not rows:
        raise InputError("nothing to draw: give rgb bands or an index")

    fig, axes = plt.subplots(
        len(rows), len(chosen), figsize=(3.2 * len(chosen), 3.4 * len(rows)), squeeze=False,
        layout="constrained",
    )
    at = ds.sel(percentile=percentile)
    for col, season in enumerate(chosen):
        for row, kind in enumerate(rows):
            ax = axes[row][col]
            if kind == "rgb":
                stack = np.stack([_thin(at[b].sel(season=season)).values for b in rgb], axis=-1)
                image = np.clip(np.nan_to_num(stack / RGB_MAX_REFLECTANCE, nan=0.0), 0, 1) ** (1 / 1.6)
                ax.imshow(image, interpolation="nearest")
                ax.set_title(f"true colour p{percentile:g}  {_season_title(ds, season)}", fontsize=8)
            else:
                values = _thin(at[kind].sel(season=season)).values
                im = ax.imshow(values, cmap="RdYlGn", vmin=-1, vmax=1, interpolation="nearest")
                ax.set_title(f"{kind} p{percentile:g}  {_season_title(ds, season)}", fontsize=8)
                if col == len(chosen) - 1:
                    fig.colorbar(im, ax=axes[row].tolist(), shrink=0.8, label=kind)
            ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
