"""Output grids: one reading of a CRS for every ``epsg`` argument, and anchors."""

from __future__ import annotations

from typing import Any

import pytest
from pyproj import CRS, Transformer

from cubehub.errors import InputError
from cubehub.grid import (
    OutputGrid,
    anchor_offsets,
    check_anchor,
    epsg_code,
    grid_for_bbox,
    scene_anchor,
)

BBOX = (15.6, 47.0, 15.7, 47.1)


@pytest.mark.parametrize(
    "crs", [3035, "3035", " 3035 ", "EPSG:3035", "epsg:3035", CRS.from_epsg(3035)]
)
def test_every_spelling_of_a_crs_is_one_epsg_code(crs: object) -> None:
    assert epsg_code(crs) == 3035  # type: ignore[arg-type]
    assert grid_for_bbox(BBOX, crs, 30.0).epsg == 3035  # type: ignore[arg-type]
    assert OutputGrid(crs, 30.0, (0.0, 0.0, 30.0, 30.0)).epsg == 3035  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("crs", "message"),
    [
        ("EPSG:999999", "not a CRS pyproj knows"),
        (999999, "EPSG:999999 is not a CRS"),
        ("utm", "'utm' is not a CRS"),
        (32.5, "a CRS must be an EPSG code"),
        (True, "a CRS must be an EPSG code"),
        (CRS.from_proj4("+proj=laea +lat_0=47.3 +lon_0=15.1 +ellps=GRS80"), "has no EPSG code"),
    ],
)
def test_a_crs_cubehub_cannot_use_says_what_to_give(crs: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        epsg_code(crs)  # type: ignore[arg-type]
    assert "EPSG:EPSG" not in str(info.value)


# --- anchors: where the pixel edges lie ---------------------------------------------------

#: A real Landsat Collection 2 transform (LC08 028/030, EPSG:32615): edges at 15 m mod 30 m.
LANDSAT = [30.0, 0.0, 173085.0, 0.0, -30.0, 4904715.0]


def test_the_scenes_grid_is_found_from_their_transforms() -> None:
    assert scene_anchor([LANDSAT, [30, 0, 304785, 0, -30, 5374215]], 30.0) == (15.0, 15.0)
    # Sentinel-2 tile corners (499980, 5300040) are multiples of 10, 20 and 60 m.
    assert scene_anchor([[10, 0, 499980, 0, -10, 5300040]], 10.0) == (0.0, 0.0)
    assert scene_anchor([LANDSAT], 10.0) is None, "another resolution: no native grid"
    assert scene_anchor([LANDSAT, [30, 0, 173090, 0, -30, 4904715]], 30.0) is None, "disagree"
    assert scene_anchor([[30, 0.5, 173085, 0, -30, 4904715]], 30.0) is None, "rotated"
    # A corner a rounding error below a multiple is on it.
    assert scene_anchor([[30, 0, 173100 - 1e-10, 0, -30, 4904700]], 30.0) == (0.0, 0.0)


def test_a_grid_anchored_to_the_scenes_keeps_their_edges() -> None:
    xs, ys = LANDSAT[2], LANDSAT[5]
    to_lonlat = Transformer.from_crs(32615, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(xs + 40_000.0, ys - 40_000.0)
    bbox = (lon, lat, lon + 0.05, lat + 0.05)
    anchor = scene_anchor([LANDSAT], 30.0)
    assert anchor is not None
    grid = grid_for_bbox(bbox, 32615, 30.0, anchor=anchor)
    xmin, ymin, xmax, ymax = grid.bounds
    assert grid.anchor == (15.0, 15.0)
    # Every output pixel edge is one of the scene's: whole pixels from its corner.
    for edge, corner in ((xmin, xs), (xmax, xs), (ymin, ys), (ymax, ys)):
        assert (edge - corner) % 30.0 == 0.0
    # The same box snapped to multiples of 30 m sits half a pixel off the scene.
    plain = grid_for_bbox(bbox, 32615, 30.0)
    assert plain.anchor == (0.0, 0.0) and (plain.bounds[0] - xs) % 30.0 == 15.0
    assert grid.shape[0] - plain.shape[0] in (-1, 0, 1)


@pytest.mark.parametrize(
    ("anchor", "offsets"),
    [
        ("edge", (0.0, 0.0)),
        ("center", (15.0, 15.0)),
        ("CENTRE", (15.0, 15.0)),
        ((5.0, -10.0), (5.0, 20.0)),
        ([1_000_007, 31], (17.0, 1.0)),
    ],
)
def test_an_explicit_anchor_places_the_edges_in_any_crs(
    anchor: Any, offsets: tuple[float, float]
) -> None:
    grid = grid_for_bbox(BBOX, 3035, 30.0, anchor=anchor)
    assert grid.anchor == offsets
    xmin, _, xmax, ymax = grid.bounds
    assert ((xmin - offsets[0]) % 30, (ymax - offsets[1]) % 30) == (0.0, 0.0)
    # Still covering the box: the anchored grid holds the edge-anchored one minus a pixel.
    edge = grid_for_bbox(BBOX, 3035, 30.0)
    assert xmin <= edge.bounds[0] + 30 and xmax >= edge.bounds[2] - 30
    assert anchor_offsets(check_anchor(anchor), 30.0) == offsets  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "anchor", ["middle", "", [15], [15, 15, 15], [float("nan"), 0], ["15", 15], True, 15, None]
)
def test_a_bad_anchor_is_refused_naming_the_choices(anchor: object) -> None:
    with pytest.raises(InputError, match=r"anchor must be 'auto' .*'edge'.*'center'.*\[x, y\]"):
        check_anchor(anchor)
    with pytest.raises(InputError, match="anchor must be"):
        grid_for_bbox(BBOX, 3035, 30.0, anchor=anchor)  # type: ignore[arg-type]


def test_auto_is_resolved_by_whoever_knows_the_scenes() -> None:
    with pytest.raises(InputError, match="'auto' is resolved by load_cube and jobs"):
        grid_for_bbox(BBOX, 3035, 30.0, anchor="auto")  # type: ignore[arg-type]
