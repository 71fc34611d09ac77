"""The output pixel grid of cubes and composites; pure (pyproj, no pixels).

:class:`OutputGrid` is the record every layer passes around (cube, tiles, stores, plans);
:func:`grid_for_bbox` makes one that covers a lon/lat box, its edges on an *anchor*:

* ``"edge"``: pixel edges at multiples of the resolution (x = k * res, y = k * res);
* ``"center"``: pixel centres there, edges half a pixel off: Landsat's own grid at 30 m,
  whose edges are at 15 m mod 30 m;
* ``(x, y)``: one pixel corner in CRS units; the edges are at x + k * res, y + k * res;
* ``"auto"`` (jobs and cubes; resolved by the caller, who knows the scenes): the scenes' own
  pixel grid where the output CRS and resolution are theirs (see :func:`scene_anchor`), so
  reading at native resolution resamples nothing; ``"edge"`` otherwise.

The name and the ``"edge"``/``"center"`` choices follow odc-geo's ``GeoBox`` ``anchor``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from cubehub.errors import InputError

__all__ = [
    "MAX_PIXELS_DEFAULT",
    "SPATIAL_DIMS",
    "Anchor",
    "AnchorOption",
    "CrsLike",
    "OutputGrid",
    "anchor_offsets",
    "check_anchor",
    "check_bounds_on_anchor",
    "epsg_code",
    "grid_for_bbox",
    "pixel_index",
    "scene_anchor",
]

#: What every ``epsg`` argument and job field accepts: 3035, "3035", "EPSG:3035", a pyproj CRS.
CrsLike: TypeAlias = int | str | CRS

#: Where an output grid's pixel edges lie: ``"edge"``, ``"center"`` or a pixel corner
#: ``(x, y)`` in CRS units (see the module docstring).
Anchor: TypeAlias = Literal["edge", "center"] | tuple[float, float]
#: An :data:`Anchor`, or ``"auto"``: the scenes' own pixel grid where it applies.
AnchorOption: TypeAlias = Literal["auto", "edge", "center"] | tuple[float, float]
_ANCHOR_NAMES = ("auto", "edge", "center")

#: The spatial dimensions of every cube, composite and stored variable, in storage order.
SPATIAL_DIMS = ("y", "x")
#: Largest number of output pixels a cube may have unless the caller raises the limit.
MAX_PIXELS_DEFAULT = 4_000_000_000


def epsg_code(crs: CrsLike) -> int:
    """The EPSG code of an output CRS given as 3035, ``"3035"``, ``"EPSG:3035"`` or a pyproj CRS.

    >>> epsg_code("EPSG:3035"), epsg_code("32633"), epsg_code(CRS.from_epsg(3035))
    (3035, 32633, 3035)

    Raises:
        InputError: not a CRS, or one without an EPSG code (cubehub's grids need one).
    """
    if isinstance(crs, bool) or not isinstance(crs, int | str | CRS):
        raise InputError(
            f"a CRS must be an EPSG code such as 3035 or 'EPSG:3035', or a pyproj CRS; got "
            f"{type(crs).__name__} {crs!r}"
        )
    text = crs.strip() if isinstance(crs, str) else ""
    if isinstance(crs, int) or text.isdigit():
        code = crs if isinstance(crs, int) else int(text)
        try:
            CRS.from_epsg(code)
        except CRSError:
            raise InputError(f"EPSG:{code} is not a CRS pyproj knows; check the code") from None
        return code
    try:
        parsed = crs if isinstance(crs, CRS) else CRS.from_user_input(text)
    except CRSError:
        raise InputError(
            f"{text!r} is not a CRS pyproj knows; give an EPSG code such as 3035 or 'EPSG:3035'"
        ) from None
    found = parsed.to_epsg()
    if found is None:
        raise InputError(
            f"the CRS {parsed.name!r} has no EPSG code, which cubehub's output grids need; "
            "choose an EPSG CRS such as 3035 (LAEA Europe) or the items' UTM zone"
        )
    return int(found)


@dataclass(frozen=True)
class OutputGrid:
    """The pixel grid of a cube and of its composites.

    Attributes:
        epsg: EPSG code of the output CRS, e.g. 32633 (UTM 33N) or 3035 (LAEA Europe).
        resolution: pixel size in CRS units (metres for projected CRSs).
        bounds: (xmin, ymin, xmax, ymax) in the output CRS, a whole number of pixels
            apart; where the edges lie is the grid's :attr:`anchor`.
    """

    epsg: int
    resolution: float
    bounds: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        # OutputGrid("EPSG:3035", ...) at run time is read like every other epsg argument.
        if not isinstance(self.epsg, int) or isinstance(self.epsg, bool):
            object.__setattr__(self, "epsg", epsg_code(self.epsg))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        xmin, ymin, xmax, ymax = self.bounds
        return round((ymax - ymin) / self.resolution), round((xmax - xmin) / self.resolution)

    @property
    def anchor(self) -> tuple[float, float]:
        """Offsets (x, y) of the pixel edges from multiples of the resolution, CRS units,
        each in [0, resolution): (0, 0) for an ``"edge"`` grid, (15, 15) for Landsat's at 30 m."""
        xmin, _, _, ymax = self.bounds
        return _offset(xmin, self.resolution), _offset(ymax, self.resolution)

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees: the box of the whole grid's edge, densified
        (pyproj ``transform_bounds``), so curved edges of a projected grid are inside."""
        to_lonlat = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        west, south, east, north = to_lonlat.transform_bounds(*self.bounds)
        return west, south, east, north


def grid_for_bbox(
    bbox_lonlat: Sequence[float],
    epsg: CrsLike,
    resolution: float,
    *,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    anchor: Anchor = "edge",
) -> OutputGrid:
    """The output grid covering a lon/lat box, its bounds snapped outward to the anchored
    pixel grid.

    Args:
        bbox_lonlat: (west, south, east, north) in degrees.
        epsg: output CRS: an EPSG code (3035, "3035", "EPSG:3035") or a pyproj CRS.
        resolution: pixel size in CRS units; must be > 0.
        max_pixels: refuse grids with more pixels than this (default 4e9), since such a
            job is almost always a unit mistake (degrees vs metres).
        anchor: where the pixel edges lie (module docstring): ``"edge"`` (default: at
            multiples of ``resolution``), ``"center"`` (half a pixel off) or a pixel corner
            ``(x, y)`` in CRS units.
    """
    if not resolution > 0:
        raise InputError(f"resolution must be a positive number of CRS units, got {resolution}")
    if check_anchor(anchor) == "auto":
        raise InputError(
            "grid_for_bbox needs a resolved anchor ('edge', 'center' or (x, y)); 'auto' is "
            "resolved by load_cube and jobs, which know the scenes"
        )
    code = epsg_code(epsg)
    transformer = Transformer.from_crs(4326, code, always_xy=True)
    west, south, east, north = bbox_lonlat
    xs, ys = transformer.transform(
        np.array([west, east, west, east, (west + east) / 2, (west + east) / 2]),
        np.array([south, south, north, north, south, north]),
    )
    res = float(resolution)
    ox, oy = anchor_offsets(anchor, res)
    bounds = (
        math.floor((min(xs) - ox) / res) * res + ox,
        math.floor((min(ys) - oy) / res) * res + oy,
        math.ceil((max(xs) - ox) / res) * res + ox,
        math.ceil((max(ys) - oy) / res) * res + oy,
    )
    grid = OutputGrid(code, res, bounds)
    rows, cols = grid.shape
    if rows * cols > max_pixels:
        raise InputError(
            f"the output grid would be {rows} x {cols} pixels ({rows * cols:.3g}), above the "
            f"limit of {max_pixels:.3g}; use a coarser resolution (now {res} CRS units), a "
            "smaller area, or raise max_pixels"
        )
    return grid


def check_anchor(anchor: Any) -> AnchorOption:
    """``anchor`` as cubehub reads it: ``"auto"``, ``"edge"``, ``"center"`` or a pixel
    corner ``(x, y)`` of two finite numbers in CRS units (a list is read as a pair).

    Raises:
        InputError: anything else, naming the choices.
    """
    if isinstance(anchor, str):
        name = anchor.strip().lower()
        if name == "centre":
            name = "center"
        if name in _ANCHOR_NAMES:
            return name  # type: ignore[return-value]  # one of the Literal's names
    elif (
        isinstance(anchor, list | tuple)
        and len(anchor) == 2
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in anchor
        )
    ):
        return float(anchor[0]), float(anchor[1])
    raise InputError(
        f"anchor must be 'auto' (the scenes' own pixel grid where the output CRS and resolution "
        f"are theirs), 'edge' (pixel edges at multiples of the resolution), 'center' (pixel "
        f"centres there) or a pixel corner [x, y] in CRS units, e.g. [15, 15]; got {anchor!r}"
    )


def anchor_offsets(anchor: Anchor, resolution: float) -> tuple[float, float]:
    """Offsets (x, y) of the pixel edges from multiples of ``resolution``, CRS units, each
    in [0, resolution): (0, 0) for ``"edge"``, (res/2, res/2) for ``"center"``."""
    checked = check_anchor(anchor)
    if checked == "auto":
        raise InputError("anchor 'auto' must be resolved against the scenes first")
    if checked == "edge":
        return 0.0, 0.0
    if checked == "center":
        return resolution / 2, resolution / 2
    return _offset(checked[0], resolution), _offset(checked[1], resolution)


def check_bounds_on_anchor(
    bounds: tuple[float, float, float, float], anchor: AnchorOption, resolution: float
) -> tuple[float, float, float, float]:
    """``bounds`` (xmin, ymin, xmax, ymax, CRS units) if their edges are on ``anchor``'s
    pixel grid at ``resolution`` metres; ``"auto"`` is resolved later, so any bounds pass.

    Raises:
        InputError: an edge off that grid, naming where the grid's edges are.
    """
    if anchor == "auto":
        return bounds
    xmin, ymin, xmax, ymax = bounds
    ox, oy = anchor_offsets(anchor, resolution)
    off = [
        (v - o) / resolution - round((v - o) / resolution)
        for v, o in ((xmin, ox), (xmax, ox), (ymin, oy), (ymax, oy))
    ]
    if any(abs(d) > 1e-6 for d in off):
        raise InputError(
            f"bounds {list(bounds)} are not on the pixel grid of anchor {anchor!r} at "
            f"resolution {resolution:g} (edges at {ox:g} + k * {resolution:g} in x, "
            f"{oy:g} + k * {resolution:g} in y); move the bounds onto it, or drop anchor"
        )
    return bounds


def scene_anchor(
    transforms: Iterable[Sequence[float]], resolution: float
) -> tuple[float, float] | None:
    """The pixel grid the scenes share at ``resolution``: its edge offsets (x, y) as
    :attr:`OutputGrid.anchor` gives them, or None.

    Args:
        transforms: the scenes' affine transforms in the output CRS, as STAC
            ``proj:transform`` gives them (``[a, b, c, d, e, f]``, pixel corner -> CRS).
            Only north-up ones whose pixel size is ``resolution`` count: assets at another
            resolution are resampled whatever the anchor.
        resolution: the output pixel size, CRS units.

    None when no transform counts, or when those that do disagree (then no one grid
    avoids resampling them all).
    """
    tolerance = 1e-6 * resolution
    found: tuple[float, float] | None = None
    for t in transforms:
        a, b, c, d, e, f = (float(v) for v in t[:6])
        if b or d or abs(a - resolution) > tolerance or abs(-e - resolution) > tolerance:
            continue
        offsets = (_offset(c, resolution), _offset(f, resolution))
        if found is None:
            found = offsets
        elif any(
            _distance(u, v, resolution) > tolerance for u, v in zip(found, offsets, strict=True)
        ):
            return None
    return found


def scene_pixel_phase(
    transforms: Iterable[Sequence[float]], grid: OutputGrid, period: int
) -> tuple[int, int] | None:
    """Where the scenes' own pixel rows and columns start on ``grid``, mod ``period`` px.

    A COG's internal tiles start at its corner, so a read chunk whose edges lie at this
    phase (a multiple of the tile size apart, see :func:`chunks_on_phase`) decodes each
    tile once, where a chunk a few pixels off decodes four tiles for one.

    Args:
        transforms: the scenes' affine transforms in the grid's CRS (STAC
            ``proj:transform``, ``[a, b, c, d, e, f]``); only north-up ones at the grid's
            resolution whose corner is on a grid pixel corner count.
        grid: the output grid.
        period: chunk edge, px (the file tiles' size or a multiple of it).

    Returns:
        (row, column) phase in [0, period) shared by most of the scenes that count, or
        None when none does.

    >>> grid = OutputGrid(32613, 30.0, (539295.0, 4431105.0, 600315.0, 4491705.0))
    >>> scene_pixel_phase([[30, 0, 539085, 0, -30, 4491915]], grid, 512)
    (505, 505)
    """
    xmin, _, _, ymax = grid.bounds
    res = grid.resolution
    phases: Counter[tuple[int, int]] = Counter()
    for t in transforms:
        a, b, c, d, e, f = (float(v) for v in t[:6])
        if (
            b
            or d
            or not math.isclose(a, res, rel_tol=1e-9)
            or not math.isclose(-e, res, rel_tol=1e-9)
        ):
            continue
        col, row = (c - xmin) / res, (ymax - f) / res
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            continue
        phases[(round(row) % period, round(col) % period)] += 1
    return phases.most_common(1)[0][0] if phases else None


def chunks_on_phase(size: int, chunk: int, phase: int) -> tuple[int, ...]:
    """Chunk lengths along an axis of ``size`` px whose inner edges lie at ``phase + k *
    chunk``; an end piece under a quarter of ``chunk`` joins its neighbour (no sliver tasks).

    >>> chunks_on_phase(2034, 512, 505)
    (505, 512, 512, 505)
    >>> chunks_on_phase(2034, 512, 0)
    (512, 512, 512, 498)
    >>> chunks_on_phase(1030, 512, 3)
    (515, 515)
    """
    edges = [e for e in range(phase % chunk, size, chunk) if e > 0]
    lengths = [b - a for a, b in zip([0, *edges], [*edges, size], strict=True)]
    if len(lengths) > 1 and lengths[0] < chunk / 4:
        lengths[:2] = [lengths[0] + lengths[1]]
    if len(lengths) > 1 and lengths[-1] < chunk / 4:
        lengths[-2:] = [lengths[-2] + lengths[-1]]
    return tuple(lengths)


def _offset(value: float, resolution: float) -> float:
    """``value`` mod ``resolution``, in [0, resolution); values a rounding error below a
    multiple count as on it (so 29.9999999999 at 30 m is 0, not 30)."""
    offset = math.fmod(value, resolution)
    offset = offset + resolution if offset < 0 else offset
    return 0.0 if resolution - offset < 1e-9 * resolution else offset + 0.0  # never -0.0


def _distance(u: float, v: float, period: float) -> float:
    """Distance of two offsets on a circle of ``period`` (0 and 29.999 are close at 30)."""
    gap = abs(u - v) % period
    return min(gap, period - gap)


def pixel_index(
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    crs_of_points: Any,
    crs: Any,
    transform: Any,
    shape: tuple[int, int],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(rows, columns) of points on a grid, -1 for points off it.

    Args:
        xs, ys: point coordinates in ``crs_of_points`` (anything pyproj takes, e.g. 4326).
        crs: the grid's CRS.
        transform: the grid's affine transform (pixel corner -> CRS), as rasterio gives it.
        shape: (rows, columns) of the grid.

    A point on the edge between two pixels belongs to the one east / south of it (GDAL's rule).
    """
    to_grid = Transformer.from_crs(CRS(crs_of_points), CRS(crs), always_xy=True)
    gx, gy = to_grid.transform(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    cols_f, rows_f = ~transform * (np.asarray(gx), np.asarray(gy))
    rows, cols = np.floor(np.asarray(rows_f)), np.floor(np.asarray(cols_f))
    inside = np.isfinite(rows) & (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return (
        np.where(inside, rows, -1).astype(np.int64),
        np.where(inside, cols, -1).astype(np.int64),
    )
