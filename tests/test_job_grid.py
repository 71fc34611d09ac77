"""A job's output grid, picked by :func:`cubehub.pipeline.plan_job` from the items' metadata
before any pixel is read: on the scenes' own pixel grid where the job's CRS and resolution
are theirs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cubehub.demo.servers import serve_stac_api
from cubehub.grid import grid_for_bbox
from cubehub.jobspec import make_job
from cubehub.pipeline import plan_job
from cubehub.planning import summarize_plan
from realdata import pc_landsat


@pytest.fixture(scope="module")
def landsat_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    """A STAC API (rustac) serving 100 real Planetary Computer landsat-c2-l2 items; the URL
    and the first item. Nothing here reads their pixels."""
    items = pc_landsat()
    path = tmp_path_factory.mktemp("landsat-api") / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with serve_stac_api(path) as api:
        yield api.url, items[0]


def _landsat_job(url: str, item: dict[str, Any], tmp_path: Path, **fields: Any) -> Any:
    west, south, _, _ = item["bbox"]
    return make_job(
        stac_api=url,
        collection="landsat-c2-l2",
        bbox=(west + 1.0, south + 0.5, west + 1.1, south + 0.6),
        years=[2024],
        bands=["red", "nir08"],
        indices=[],
        output=str(tmp_path / "out.zarr"),
        **fields,
    )


def test_a_landsat_job_at_30_m_in_its_utm_zone_is_on_the_scenes_grid(
    landsat_api: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, item = landsat_api
    corner = item["properties"]["proj:transform"]
    plan = plan_job(_landsat_job(url, item, tmp_path, resolution=30))
    assert plan.grid.epsg == item["properties"]["proj:epsg"]
    assert plan.grid.anchor == (15.0, 15.0)
    xmin, _, _, ymax = plan.grid.bounds
    assert ((xmin - corner[2]) % 30, (ymax - corner[5]) % 30) == (0.0, 0.0)
    # Every tile's grid is on it too: tiles are whole pixels of the job's grid.
    assert {t.grid(plan.grid).anchor for t in plan.tiles} == {(15.0, 15.0)}
    (grid_line,) = [line for line in summarize_plan(plan).lines() if line.startswith("Grid")]
    assert "edges x = 15 + k*30, y = 15 + k*30" in grid_line


def test_a_landsat_job_in_laea_europe_takes_its_explicit_anchor(
    landsat_api: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, item = landsat_api
    auto = plan_job(_landsat_job(url, item, tmp_path, resolution=30, epsg=3035))
    assert auto.grid.anchor == (0.0, 0.0)
    centred = plan_job(_landsat_job(url, item, tmp_path, resolution=30, epsg=3035, anchor="center"))
    assert centred.grid.anchor == (15.0, 15.0)


def test_a_sentinel_2_job_grid_is_unchanged(
    store_job_fields: dict[str, Any], tmp_path: Path
) -> None:
    fields = {k: v for k, v in store_job_fields.items() if k != "bounds"}
    plan = plan_job(make_job(**fields, output=str(tmp_path / "s2.zarr")))
    assert plan.grid == grid_for_bbox(fields["bbox"], fields["epsg"], 10.0, anchor="edge")
