"""A store written the quickstart way, ``composite.to_zarr(...)``, reads as what it is.

It has none of cubehub's tile records: that means nobody recorded whether it is complete,
not that no tile is; its pixels are shown, and ``info`` says so instead of "0/0 complete".
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from cubehub.cli import main
from cubehub.output.info import describe_store, format_store_info
from cubehub.output.open import open_composite
from cubehub.testing.store_contract import HALF_DN, synthetic_composite


@pytest.fixture
def plain(tmp_path: Path) -> tuple[str, xr.Dataset]:
    ds = synthetic_composite(bands=("red", "green", "blue", "nir"))
    url = str(tmp_path / "quickstart.zarr")
    ds.to_zarr(url, mode="w")
    return url, ds


def test_its_pixels_are_shown(plain: tuple[str, xr.Dataset]) -> None:
    url, ds = plain
    out = open_composite(url)
    assert "complete" not in out.coords  # nobody recorded it
    assert float(out["red"].notnull().mean()) > 0.9
    np.testing.assert_allclose(out["red"].values, ds["red"].values, atol=HALF_DN, rtol=0)
    assert out["red"].rio.crs.to_epsg() == 32633


def test_info_says_it_has_no_records_rather_than_0_of_0_complete(
    plain: tuple[str, xr.Dataset],
) -> None:
    url, _ = plain
    info = describe_store(url)
    assert not info.records and info.complete is None
    text = format_store_info(info)
    assert "no completion records" in text and "0/0" not in text and "all complete" not in text
    shown = CliRunner().invoke(main, ["info", url, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["complete"] is None


def test_preview_draws_it(plain: tuple[str, xr.Dataset], tmp_path: Path) -> None:
    url, _ = plain
    result = CliRunner().invoke(
        main, ["preview", url, "--output", str(tmp_path / "maps"), "--index", "NDVI", "--counts"]
    )
    assert result.exit_code == 0, result.output
    (png,) = (tmp_path / "maps").glob("*.png")
    image = mpimg.imread(png)[..., :3]
    colours = np.unique((image.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 5000, "blank panels: black true colour, white NDVI and counts"
