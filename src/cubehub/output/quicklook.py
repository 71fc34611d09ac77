"""PNG quicklooks of a composite: true colour, any index, any season and percentile.

One column per season, titled with the season's label and dates; one row per layer (true
colour, each index, optionally the clear-observation counts), each index and the counts with
a colour bar. An index that is not stored but whose bands are is computed from the composite
bands at the chosen percentile (e.g. NDWI of the p50 green and nir), and its label says so.

A gap-filled store (:mod:`cubehub.gapfill`) is drawn with its filled pixels marked: a
translucent :data:`FILL_MARK` over every pixel whose value was filled (from the
``<variable>_fill_source`` layers of the variables drawn), and a last row of fill sources
(the highest code of any variable, with the rules' names on its colour bar).

Figures are built with matplotlib's object API, never ``pyplot``, so importing this module
changes no backend: files are written through Agg, and in a notebook the returned
:class:`~matplotlib.figure.Figure` shows inline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from cubehub.compute.gapfill import FILL_SOURCE_SUFFIX, UNFILLED, fill_source_name
from cubehub.compute.indices import compute_indices, index_bands, supported_indices
from cubehub.errors import InputError

#: Reflectance mapped to full brightness in true colour (0.3 suits land surfaces).
RGB_MAX_REFLECTANCE = 0.3
#: Gamma applied to true colour, brightening the dark vegetation and water a little.
RGB_GAMMA = 1.6
#: Largest image edge drawn, in pixels; larger composites are subsampled by a whole step.
MAX_PIXELS_PLOTTED = 800
#: Colour map and fixed range of indices whose values stay within -1..1 (NDVI, NDWI, NBR, ...).
INDEX_CMAP = "RdYlGn"
COUNT_CMAP = "viridis"
#: Colour of pixels without a value (no clear observation, outside the data), in every
#: panel: black would read as dark ground, white as cloud or snow.
NODATA_COLOUR = "0.78"
#: Colour (RGBA) laid over filled pixels: magenta, unlike any land surface or index colour.
FILL_MARK = (1.0, 0.0, 1.0, 0.6)
#: Colours of the fill-source row: observed grey, filled codes from this map, unfilled black.
FILL_CMAP = "plasma"


@dataclass(frozen=True)
class _Layer:
    """One row of the figure: its kind, variable name and label."""

    kind: str  # "rgb", "index", "count" or "fill"
    name: str
    label: str
    #: Variables whose fill sources mark this row's filled pixels.
    marks: tuple[str, ...] = ()


def season_title(ds: xr.Dataset, season: str) -> str:
    """``"2022-winter\\n2021-12-02 .. 2022-03-20"``: a season's label and inclusive dates."""
    start = pd.Timestamp(ds["season_start"].sel(season=season).values).date()
    end = pd.Timestamp(ds["season_end"].sel(season=season).values).date()
    return f"{season}\n{start} .. {end}"


def stored_indices(ds: xr.Dataset) -> list[str]:
    """Names of the spectral-index variables a composite holds, e.g. ``["NDVI"]``."""
    known = set(supported_indices())
    return [str(name) for name in ds.data_vars if name in known]


def _thin(da: xr.DataArray, max_pixels: int) -> xr.DataArray:
    step = max(1, int(np.ceil(max(da.sizes["y"], da.sizes["x"]) / max_pixels)))
    return da.isel(y=slice(None, None, step), x=slice(None, None, step))


def _composite_bands(ds: xr.Dataset) -> list[str]:
    """Stored variables with (season, percentile, ...) dims: bands and indices."""
    return [str(v) for v in ds.data_vars if ds[v].dims[:2] == ("season", "percentile")]


def _index_inputs(ds: xr.Dataset, name: str) -> list[str]:
    """Bands to compute index ``name`` from, or ``[]`` when the store holds it."""
    if name in ds.data_vars:
        return []
    bands = _composite_bands(ds)
    needed = index_bands([name], available=bands)  # an unknown name raises, with suggestions
    missing = sorted(needed - set(bands))
    if missing:
        raise InputError(
            f"index {name!r} is not in the store and needs band(s) {', '.join(missing)} that it "
            f"lacks; stored indices: {', '.join(stored_indices(ds)) or 'none'}, "
            f"bands: {', '.join(b for b in bands if b not in stored_indices(ds))}"
        )
    return sorted(needed)


def index_at(ds: xr.Dataset, name: str, percentile: float) -> tuple[xr.DataArray, str]:
    """Index ``name`` at ``percentile``, lazily, (season, y, x), and its label.

    The stored variable when there is one (the index's own percentiles); otherwise
    computed from the stored bands at that percentile, labelled e.g. ``"NDWI of p50 bands"``.

    Raises:
        InputError: the index is unknown, or neither stored nor computable from the bands.
    """
    inputs = _index_inputs(ds, name)
    if not inputs:
        return ds[name].sel(percentile=percentile), f"{name} p{percentile:g}"
    at = ds[inputs].sel(percentile=percentile)
    return compute_indices(at, [name])[name], f"{name} of p{percentile:g} bands"


def _index_limits(values: np.ndarray) -> tuple[float, float]:
    """-1..1 for indices that stay within it, so seasons and stores compare; else 2-98 %."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -1.0, 1.0
    low, high = np.percentile(finite, [2, 98])
    if low >= -1 and high <= 1:
        return -1.0, 1.0
    return float(low), float(max(high, low + 1e-6))


def _check_choice(kind: str, wanted: Sequence[object], available: Sequence[object]) -> None:
    def show(values: Sequence[object]) -> str:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise InputError(f"{kind} {show(unknown)} not in the store; it has {show(available)}")


def fill_sources(ds: xr.Dataset) -> list[str]:
    """The variables of a gap-filled store that have a fill-source layer (``[]``: not filled)."""
    return [
        str(name).removesuffix(FILL_SOURCE_SUFFIX)
        for name in ds.data_vars
        if str(name).endswith(FILL_SOURCE_SUFFIX)
    ]


def _marked(ds: xr.Dataset, variables: Sequence[str]) -> tuple[str, ...]:
    """Those of ``variables`` the store says how it filled."""
    filled = set(fill_sources(ds))
    return tuple(v for v in variables if v in filled)


def _layers(
    ds: xr.Dataset,
    rgb: Sequence[str],
    indices: Sequence[str],
    counts: bool,
    percentile: float,
    fill_marks: bool = False,
) -> list[_Layer]:
    layers = []
    if rgb:
        if len(rgb) != 3:
            raise InputError(f"rgb needs three bands (red, green, blue), got {list(rgb)}")
        missing = [b for b in rgb if b not in ds.data_vars]
        if missing:
            raise InputError(
                f"band(s) {', '.join(missing)} not in the store; it has {', '.join(sorted(map(str, ds.data_vars)))}; "
                "choose other rgb bands or leave true colour out"
            )
        layers.append(
            _Layer(
                "rgb", "rgb", f"true colour p{percentile:g}", _marked(ds, rgb) if fill_marks else ()
            )
        )
    for name in indices:
        inputs = [name] if name in ds.data_vars else _index_inputs(ds, name)
        layers.append(_Layer("index", name, name, _marked(ds, inputs) if fill_marks else ()))
    if counts:
        if "valid_count" not in ds.data_vars:
            raise InputError("the store has no valid_count variable to show")
        layers.append(_Layer("count", "valid_count", "clear observations"))
    if not layers:
        raise InputError("nothing to draw: ask for true colour, an index or the counts")
    if fill_marks and fill_sources(ds):
        layers.append(_Layer("fill", "fill", "fill source (highest code)", tuple(fill_sources(ds))))
    return layers


def _index_names(index: str | Sequence[str] | None) -> list[str]:
    return [index] if isinstance(index, str) else list(index or [])


def check_request(
    ds: xr.Dataset,
    *,
    percentiles: Sequence[float],
    rgb: Sequence[str] | None,
    index: str | Sequence[str] | None,
    seasons: Sequence[str] | None,
    counts: bool,
) -> list[str]:
    """Check a quicklook request on metadata only; returns the season labels to show.

    Raises:
        InputError: a percentile, season, band or index the store lacks.
    """
    chosen = [str(s) for s in ds.season.values] if not seasons else list(seasons)
    _check_choice("season(s)", chosen, [str(s) for s in ds.season.values])
    _check_choice(
        "percentile", [float(q) for q in percentiles], [float(p) for p in ds.percentile.values]
    )
    for name in _index_names(index):
        _index_inputs(ds, name)
    _layers(ds, rgb or (), _index_names(index), counts, percentiles[0] if percentiles else 50)
    return chosen


def quicklook_figure(
    ds: xr.Dataset,
    *,
    percentile: float = 50,
    rgb: Sequence[str] | None = ("red", "green", "blue"),
    index: str | Sequence[str] | None = "NDVI",
    seasons: Sequence[str] | None = None,
    counts: bool = False,
    max_pixels: int = MAX_PIXELS_PLOTTED,
    fill_marks: bool = True,
) -> Figure:
    """A figure of a composite: one column per season, one row per layer.

    Args:
        ds: a composite (from :func:`cubehub.seasonal_composite` or
            :func:`cubehub.open_composite`): variables (season, percentile, y, x) in
            reflectance units, coordinates ``season_start`` and ``season_end``.
        percentile: which percentile to show, default 50; must be in the store.
        rgb: bands for red, green and blue (reflectance 0..0.3 mapped to dark..bright), or
            None / empty to leave true colour out.
        index: index name(s), one row each, stored or computable from the stored bands (see
            :func:`index_at`); None for none. Default ``"NDVI"``.
        seasons: season labels to show, default all, in store order.
        counts: add a row of clear-observation counts (``valid_count``), default False.
        max_pixels: largest image edge drawn, in pixels (default 800); larger stores are
            subsampled by a whole step, which reads every chunk once.
        fill_marks: on a gap-filled store, mark filled pixels (:data:`FILL_MARK`) and add
            a row of fill sources; default True.

    Raises:
        InputError: a percentile, season, band or index the store lacks; checked before any
            pixel is read.

    Example:
        >>> fig = quicklook_figure(open_composite("demo-output/composite.zarr"),
        ...                        index=["NDVI", "NDWI"], counts=True)  # doctest: +SKIP
    """
    chosen = check_request(
        ds, percentiles=[percentile], rgb=rgb, index=index, seasons=seasons, counts=counts
    )
    if max_pixels < 1:
        raise InputError(f"max_pixels must be at least 1, got {max_pixels}")
    layers = _layers(ds, rgb or (), _index_names(index), counts, percentile, fill_marks)
    index_data = {
        layer.name: index_at(ds, layer.name, percentile)
        for layer in layers
        if layer.kind == "index"
    }

    at = ds.sel(season=chosen)
    fig = Figure(figsize=(3.0 * len(chosen) + 1.2, 3.1 * len(layers) + 0.5), layout="constrained")
    axes = fig.subplots(len(layers), len(chosen), squeeze=False)
    for row, layer in enumerate(layers):
        label = layer.label
        if layer.kind == "rgb":
            bands = [_thin(at[b].sel(percentile=percentile), max_pixels).values for b in rgb or ()]
            _draw_rgb(axes[row], np.stack(bands, axis=-1))
        elif layer.kind == "index":
            data, label = index_data[layer.name]
            values = _thin(data.sel(season=chosen), max_pixels).values
            _draw_scalar(fig, axes[row], values, INDEX_CMAP, _index_limits(values), label)
        elif layer.kind == "count":
            values = _thin(at["valid_count"], max_pixels).values.astype(float)
            finite = values[np.isfinite(values)]
            limits = (0.0, max(1.0, float(finite.max()) if finite.size else 1.0))
            _draw_scalar(fig, axes[row], values, COUNT_CMAP, limits, "clear observations per pixel")
        else:
            codes = np.max([_codes(at, v, max_pixels) for v in layer.marks], axis=0)
            _draw_fill_sources(fig, axes[row], codes, ds[fill_source_name(layer.marks[0])].attrs)
        if layer.kind != "fill" and layer.marks:
            filled = np.any([_is_filled(_codes(at, v, max_pixels)) for v in layer.marks], axis=0)
            _draw_marks(axes[row], filled)
            label += "\n(filled: magenta)"
        for ax, season in zip(axes[row], chosen, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor(NODATA_COLOUR)
            ax.set_title(season_title(ds, season), fontsize=8)
        axes[row][0].set_ylabel(label, fontsize=9)
    collection = ds.attrs.get("stac_collection")
    of = f" of {collection}" if collection else ""
    if all(layer.kind == "count" for layer in layers):
        heading = f"clear observations per season{of}"
    else:
        heading = f"{ds.attrs.get('title', 'composite')}{of}, p{percentile:g}"
    fig.suptitle(f"{heading} (grey: no clear observation)", fontsize=10)
    return fig


def _codes(at: xr.Dataset, variable: str, max_pixels: int) -> np.ndarray:
    """(season, y, x) fill codes of ``variable``, :data:`UNFILLED` where there is no value
    (a store decodes that fill value to NaN)."""
    values = np.asarray(_thin(at[fill_source_name(variable)], max_pixels).values, dtype=float)
    codes: np.ndarray = np.nan_to_num(values, nan=UNFILLED).astype(np.uint8)
    return codes


def _is_filled(codes: np.ndarray) -> np.ndarray:
    return np.asarray((codes > 0) & (codes < UNFILLED))


def _draw_marks(row: Sequence[Axes], filled: np.ndarray) -> None:
    """Lay :data:`FILL_MARK` over the filled pixels of each season's image."""
    for ax, mask in zip(row, filled, strict=True):
        overlay = np.zeros((*mask.shape, 4))
        overlay[mask] = FILL_MARK
        ax.imshow(overlay, interpolation="nearest")


def _draw_fill_sources(
    fig: Figure, row: Sequence[Axes], codes: np.ndarray, attrs: Mapping[str, Any]
) -> None:
    """Codes as categories: observed grey, each rule a colour, unfilled black."""
    values = [int(v) for v in attrs.get("flag_values", sorted(np.unique(codes).tolist()))]
    meanings = str(attrs.get("flag_meanings", " ".join(map(str, values)))).split()
    rules = [v for v in values if 0 < v < UNFILLED]
    ramp = colormaps[FILL_CMAP].resampled(max(1, len(rules)))
    colours: list[Any] = ["#d9d9d9", *(ramp(k) for k in range(len(rules))), "#000000"]
    order = [0, *rules, UNFILLED]
    position = {code: k for k, code in enumerate(order)}
    image = np.vectorize(lambda c: position.get(int(c), len(order) - 1))(codes)
    cmap = ListedColormap(colours)
    for ax, season in zip(row, image, strict=True):
        im = ax.imshow(season, cmap=cmap, vmin=-0.5, vmax=len(order) - 0.5, interpolation="nearest")
    bar = fig.colorbar(im, ax=list(row), shrink=0.85, ticks=range(len(order)))
    names = dict(zip(values, meanings, strict=False))
    bar.ax.set_yticklabels([names.get(code, str(code)) for code in order], fontsize=6)


def _draw_rgb(row: Sequence[Axes], stack: np.ndarray) -> None:
    """(season, y, x, 3) reflectance as true colour, 0..RGB_MAX_REFLECTANCE dark to bright;
    pixels without all three bands transparent (they show the axes' no-data colour)."""
    for ax, image in zip(row, stack, strict=True):
        scaled = np.clip(np.nan_to_num(image / RGB_MAX_REFLECTANCE, nan=0.0), 0, 1) ** (
            1 / RGB_GAMMA
        )
        alpha = np.isfinite(image).all(axis=-1, keepdims=True).astype(scaled.dtype)
        ax.imshow(np.concatenate([scaled, alpha], axis=-1), interpolation="nearest")


def _draw_scalar(
    fig: Figure,
    row: Sequence[Axes],
    values: np.ndarray,
    cmap: str,
    limits: tuple[float, float],
    label: str,
) -> None:
    """(season, y, x) values on one colour scale, with one colour bar for the row."""
    for ax, image in zip(row, values, strict=True):
        im = ax.imshow(image, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    fig.colorbar(im, ax=list(row), shrink=0.85, label=label)


def write_quicklook(
    ds: xr.Dataset,
    path: Path,
    *,
    percentile: float = 50,
    rgb: Sequence[str] | None = ("red", "green", "blue"),
    index: str | Sequence[str] | None = "NDVI",
    seasons: Sequence[str] | None = None,
    counts: bool = False,
    max_pixels: int = MAX_PIXELS_PLOTTED,
    dpi: int = 110,
    fill_marks: bool = True,
) -> Path:
    """Write :func:`quicklook_figure` to the PNG file ``path`` (folders created); returns ``path``.

    Takes the arguments of :func:`quicklook_figure`, plus ``dpi`` (default 110: about
    330 pixels per season column).

    Example:
        >>> write_quicklook(open_composite("demo-output/composite.zarr"), Path("ql.png"),
        ...                 percentile=75, index=["NDVI", "NDWI"])  # doctest: +SKIP
    """
    fig = quicklook_figure(
        ds,
        percentile=percentile,
        rgb=rgb,
        index=index,
        seasons=seasons,
        counts=counts,
        max_pixels=max_pixels,
        fill_marks=fill_marks,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
