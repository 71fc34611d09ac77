"""``cubehub preview`` and the quicklook figures, on a store written by the real pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.image as mpimg
import numpy as np
import pytest
from click.testing import CliRunner

import cubehub
from cubehub.cli import main
from cubehub.demo import start_demo
from cubehub.errors import InputError
from cubehub.output.quicklook import NODATA_COLOUR, quicklook_figure, write_quicklook
from cubehub.testing.store_contract import synthetic_composite

SEASONS = ["2022-winter", "2022-spring", "2022-summer", "2022-autumn"]
DATES = [
    "2021-12-02 .. 2022-03-20",
    "2022-03-21 .. 2022-06-24",
    "2022-06-25 .. 2022-09-12",
    "2022-09-13 .. 2022-12-01",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A composite of the demo archive (32 x 32 px, a scene every 16 days) from ``run_job``."""
    root = tmp_path_factory.mktemp("preview")
    with (
        start_demo(root / "archive", size=32, revisit_days=16) as demo,
        cubehub.cluster("local") as client,
    ):
        job = cubehub.make_job(
            stac_api=demo.stac_api,
            bbox=demo.bbox,
            bounds=demo.bounds,
            epsg=demo.epsg,
            years=[2022],
            bands=["red", "green", "blue", "nir"],
            indices=["NDVI"],
            output=str(root / "graz.zarr"),
            chunk_size=32,
            tile_size=32,
        )
        cubehub.run_job(job, client, show_progress=False)
    return job.output


def _stats(png: Path) -> dict[str, float]:
    image = mpimg.imread(png)[..., :3]
    colours = np.unique((image.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    not_white = (image < 0.95).any(axis=-1)
    return {
        "height": image.shape[0],
        "width": image.shape[1],
        "std": float(image.std()),
        "colours": len(colours),
        "drawn": float(not_white.mean()),
    }


def test_preview_writes_one_png_per_percentile(store: str, tmp_path: Path) -> None:
    args = [
        "preview",
        store,
        "-o",
        str(tmp_path),
        "-i",
        "NDVI",
        "-i",
        "NDWI",
        "-p",
        "25",
        "-p",
        "75",
        "--counts",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in written] == ["graz-p25.png", "graz-p75.png"]
    assert result.stdout.split() == [str(p) for p in written]
    for png in written:
        s = _stats(png)
        # 4 seasons x 4 rows (true colour, NDVI, NDWI, counts) at 110 dpi: about 1450 x 1420.
        assert 1200 < s["width"] < 1700 and 1200 < s["height"] < 1700, s
        assert s["std"] > 0.1 and s["colours"] > 200 and s["drawn"] > 0.3, (
            f"{png.name} looks blank: {s}"
        )


def test_preview_defaults_to_p50_with_the_stored_indices(store: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["preview", store, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    s = _stats(tmp_path / "graz-p50.png")
    # 4 seasons x 2 rows (true colour, NDVI).
    assert 1200 < s["width"] < 1700 and 600 < s["height"] < 900, s
    assert s["std"] > 0.1 and s["drawn"] > 0.3


def test_one_season_without_true_colour(store: str, tmp_path: Path) -> None:
    args = ["preview", store, "-o", str(tmp_path), "--no-rgb", "-s", "2022-summer", "-i", "EVI"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    s = _stats(tmp_path / "graz-p50.png")
    assert s["width"] < 700 and s["height"] < 500, s
    assert s["colours"] > 50 and s["drawn"] > 0.3


def test_figure_has_season_dates_colour_bars_and_labels(store: str) -> None:
    ds = cubehub.open_composite(store)
    fig = quicklook_figure(ds, percentile=75, index=["NDVI", "NDWI"], counts=True)
    images = [ax for ax in fig.axes if ax.get_images()]
    bars = [ax for ax in fig.axes if not ax.get_images()]
    assert len(images) == 4 * 4
    titles = [ax.get_title() for ax in images[:4]]
    assert titles == [f"{s}\n{d}" for s, d in zip(SEASONS, DATES, strict=True)]
    rows = [images[4 * r].get_ylabel() for r in range(4)]
    assert rows == ["true colour p75", "NDVI p75", "NDWI of p75 bands", "clear observations"]
    assert sorted(ax.get_ylabel() for ax in bars) == [
        "NDVI p75",
        "NDWI of p75 bands",
        "clear observations per pixel",
    ]
    assert "p75" in fig.get_suptitle()


def test_an_index_the_store_holds_is_read_not_recomputed(store: str) -> None:
    ds = cubehub.open_composite(store)
    fig = quicklook_figure(ds, rgb=None, index="NDVI", seasons=["2022-summer"])
    (image,) = [im for ax in fig.axes for im in ax.get_images()]
    shown = image.get_array()
    assert shown is not None
    expected = ds["NDVI"].sel(season="2022-summer", percentile=50).values
    np.testing.assert_allclose(np.ma.filled(shown, np.nan), expected, equal_nan=True)


def test_write_quicklook_keeps_its_old_call(store: str, tmp_path: Path) -> None:
    png = write_quicklook(cubehub.open_composite(store), tmp_path / "q" / "quicklook.png")
    assert png.is_file() and _stats(png)["std"] > 0.1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "70"], "error: percentile 70 not in the store; it has 25, 50, 75"),
        (
            ["-s", "2022-sommer"],
            "error: season(s) 2022-sommer not in the store; it has 2022-winter,",
        ),
        (["-i", "NDVX"], "error: unknown spectral index 'NDVX'; did you mean NDVI"),
        (["-i", "NBR"], "error: index 'NBR' is not in the store and needs band(s) swir22"),
    ],
)
def test_bad_requests_fail_before_any_png(
    store: str, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["preview", store, "-o", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not list(tmp_path.glob("*.png"))


def test_nothing_to_draw_is_an_input_error(store: str) -> None:
    with pytest.raises(InputError, match="nothing to draw"):
        quicklook_figure(cubehub.open_composite(store), rgb=None, index=None)


def test_a_missing_store_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.zarr"
    cmd = [sys.executable, "-m", "cubehub", "preview", str(missing), "-o", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no store at"), proc.stderr
    assert str(missing) in lines[0] and "Traceback" not in proc.stderr


def test_missing_pixels_are_grey_and_said_so_not_black() -> None:
    ds = synthetic_composite(bands=("red", "green", "blue", "nir"))  # a NaN corner, y < 3, x < 5
    fig = quicklook_figure(ds, index="NDVI")
    rgb_axes = fig.axes[0]
    (image,) = rgb_axes.get_images()
    pixels = np.asarray(image.get_array())
    assert pixels.shape[-1] == 4, "true colour carries an alpha channel"
    assert (pixels[:3, :5, 3] == 0).all() and (pixels[5:, 6:, 3] == 1).all()
    assert rgb_axes.get_facecolor()[:3] == mcolors.to_rgb(NODATA_COLOUR)
    assert "grey: no clear observation" in fig.get_suptitle()


def test_counts_alone_are_titled_as_counts_not_as_a_percentile() -> None:
    ds = synthetic_composite()
    title = quicklook_figure(ds, rgb=None, index=None, counts=True).get_suptitle()
    assert "clear observations" in title and "p50" not in title
    assert "p50" in quicklook_figure(ds, rgb=None, index="NDVI").get_suptitle()
