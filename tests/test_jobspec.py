"""Job fields a new user gets wrong: each one is refused with the likely fix, before any work."""

from __future__ import annotations

from typing import Any

import pytest
from pyproj import CRS

from cubehub.compute.masks import QaPixelMaskRule
from cubehub.errors import InputError
from cubehub.jobspec import job_from_yaml, make_job

FIELDS: dict[str, Any] = {
    "stac_api": "earth-search",
    "bbox": (15.40, 47.00, 15.50, 47.08),
    "years": [2022],
    "output": "graz-2022.zarr",
}


@pytest.mark.parametrize("epsg", [3035, "3035", "EPSG:3035", CRS.from_epsg(3035)])
def test_epsg_in_every_spelling(epsg: object) -> None:
    assert make_job(**FIELDS, epsg=epsg).epsg == 3035
    assert (
        job_from_yaml(
            f"stac_api: earth-search\nbbox: [15.4, 47.0, 15.5, 47.08]\nyears: [2022]\n"
            f"output: x.zarr\nepsg: {epsg if not isinstance(epsg, CRS) else 3035}\n"
        ).epsg
        == 3035
    )


def test_an_unknown_epsg_names_the_field() -> None:
    with pytest.raises(InputError, match=r"epsg: .*'EPSG:12' is not a CRS|epsg: EPSG:12 is not"):
        make_job(**FIELDS, epsg="EPSG:12")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"bbox": (15.4, 47.0, 15.5)},
            "bbox must have 4 numbers (west, south, east, north), got 3",
        ),
        ({"bbox": "15.4, 47.0, 15.5, 47.08"}, "bbox must be 4 numbers"),
        ({"percentiles": (0.25, 0.5, 0.75)}, "did you mean [25, 50, 75]"),
        ({"max_cloud_cover": 0.8}, "did you mean 80"),
        ({"output": "graz-2022.tif"}, "writes Zarr stores"),
        ({"output": "s3://bucket/graz.nc"}, "writes Zarr stores"),
    ],
)
def test_likely_mistakes_name_the_fix(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        make_job(**{**FIELDS, **change})
    assert message in str(info.value)
    assert "bbox.3" not in str(info.value)


def test_bands_and_indices_may_be_one_name() -> None:
    job = make_job(**FIELDS, bands="nir", indices="NDVI")
    assert job.bands == ("nir",) and job.indices == ("NDVI",)


# -- defaults from the collection profile ------------------------------------------------

LANDSAT = {**FIELDS, "stac_api": "planetary-computer", "collections": ["landsat-c2-l2"]}
ODSE_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11")


def test_a_landsat_job_gets_the_odse_bands_at_30_m_and_the_qa_pixel_mask() -> None:
    """Was: 10 m and Sentinel-2's bands, so the job failed on ``nir``."""
    job = make_job(**LANDSAT)
    assert job.collection == "landsat-c2-l2"
    assert job.bands == ODSE_BANDS and job.resolution == 30.0
    assert job.mask.reject_bits == (0, 1, 2, 3, 4) and job.mask.keep_classes is None
    assert job.resolved_profile.name == "planetary-computer/landsat-c2-l2"
    assert job.defaults_note() == (
        "bands, resolution, mask.reject_bits from profile planetary-computer/landsat-c2-l2 "
        "(collection landsat-c2-l2)"
    )
    yaml_job = job_from_yaml(
        "stac_api: planetary-computer\ncollections: [landsat-c2-l2]\n"
        "bbox: [15.4, 47.0, 15.5, 47.08]\nyears: [2022]\noutput: x.zarr\n"
    )
    assert yaml_job == make_job(**{**LANDSAT, "output": "x.zarr"})


def test_sentinel_2_defaults_are_unchanged_and_a_job_says_only_what_differs() -> None:
    job = make_job(**FIELDS)
    assert job.bands == ("blue", "green", "red", "nir", "swir16", "swir22")
    assert job.resolution == 10.0 and job.mask.keep_classes == (4, 5, 6, 7, 11)
    # The stored job (and so the stores of earlier versions) carries no Landsat field.
    assert job.model_dump(mode="json")["mask"] == {
        "keep_classes": [4, 5, 6, 7, 11],
        "dilate_cloud_m": 0.0,
        "dilate_shadow_m": 0.0,
    }
    own = make_job(**LANDSAT, bands=["red", "nir08"], resolution=60)
    assert own.bands == ("red", "nir08") and own.resolution == 60.0
    assert own.defaults_note().startswith("mask.reject_bits from profile")


def test_keep_classes_on_a_landsat_job_says_to_use_reject_bits() -> None:
    """Was: silently ignored (the QA_PIXEL rule took its own defaults)."""
    with pytest.raises(
        InputError, match=r"mask.keep_classes: .*QA_PIXEL bits.*use mask.reject_bits"
    ):
        make_job(**LANDSAT, mask={"keep_classes": [4, 5]})
    with pytest.raises(InputError, match=r"mask.reject_bits: .*SCL classes.*use mask.keep_classes"):
        make_job(**FIELDS, mask={"reject_bits": [3]})


def test_reject_bits_are_honoured_and_checked() -> None:
    job = make_job(**LANDSAT, mask={"reject_bits": [0, 3, 4], "dilate_cloud_m": 90})
    rule = job.mask.rule(job.resolved_profile)
    assert isinstance(rule, QaPixelMaskRule)
    assert rule.reject_bits == (0, 3, 4) and rule.dilate_cloud_m == 90
    assert rule.cloud_bits == (3,)  # cirrus kept is not buffered as a cloud either
    with pytest.raises(InputError, match=r"mask: .*invalid bits \[9\]"):
        make_job(**LANDSAT, mask={"reject_bits": [9]})


def test_bands_of_another_sensor_and_profiles_are_refused_by_name() -> None:
    with pytest.raises(InputError, match=r"bands: unknown band name\(s\) 'nir' .*nir08"):
        make_job(**LANDSAT, bands=["red", "nir"])
    with pytest.raises(InputError, match=r"collection: unknown collection 'landsat-c2-l1'"):
        make_job(**{**FIELDS, "collection": "landsat-c2-l1"})
    with pytest.raises(InputError, match="collections: a job composites one collection"):
        make_job(**{**FIELDS, "collections": ["landsat-c2-l2", "sentinel-2-l2a"]})
    with pytest.raises(InputError, match="write collection_profile: earth-search/landsat-c2-l2"):
        make_job(**LANDSAT, profile="earth-search/landsat-c2-l2")


def test_collection_profile_names_the_layout_in_a_job_file() -> None:
    job = job_from_yaml(
        "stac_api: http://127.0.0.1:9/stac\ncollection: landsat-c2-l2\n"
        "collection_profile: earth-search/landsat-c2-l2\n"
        "bbox: [15.4, 47.0, 15.5, 47.08]\nyears: [2022]\noutput: x.zarr\n"
    )
    assert job.resolved_profile.name == "earth-search/landsat-c2-l2"
    assert job.defaults_note().endswith("from profile earth-search/landsat-c2-l2")
    with pytest.raises(InputError, match=r"collection_profile: .*not 'landsat-c2-l2'"):
        make_job(**LANDSAT, collection_profile="earth-search/sentinel-2-l2a")


def test_harmonize_is_off_by_default_and_roy2016_for_landsat() -> None:
    assert make_job(**FIELDS).harmonize is None
    landsat = job_from_yaml(
        "stac_api: earth-search\ncollection: landsat-c2-l2\nbbox: [15.4, 47.0, 15.5, 47.08]\n"
        "years: [2020]\nbands: [red, nir08]\noutput: x.zarr\nharmonize: roy2016\n"
    )
    assert landsat.harmonize == "roy2016"
    assert landsat.model_dump(mode="json")["harmonize"] == "roy2016"  # into provenance


def test_an_unknown_harmonisation_lists_the_choices() -> None:
    with pytest.raises(
        InputError,
        match=r"job file x.yaml: harmonize: unknown harmonisation 'roy2017'; choose one of: roy2016",
    ):
        job_from_yaml(
            "stac_api: earth-search\ncollection: landsat-c2-l2\nbbox: [15.4, 47.0, 15.5, 47.08]\n"
            "years: [2020]\noutput: x.zarr\nharmonize: roy2017\n",
            "job file x.yaml",
        )


def test_harmonising_a_sentinel_2_job_is_refused() -> None:
    with pytest.raises(
        InputError, match=r"harmonises Landsat TM/ETM\+ to OLI.*sentinel-2-l2a is sentinel-2"
    ):
        make_job(**FIELDS, harmonize="roy2016")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), ("edge", "edge"), ("center", "center"), ([15, 15], (15.0, 15.0))],
)
def test_anchor_in_a_job_file_and_make_job(value: object, expected: object) -> None:
    assert make_job(**FIELDS, anchor=value).anchor == expected
    yaml_value = value if isinstance(value, str) else "[15, 15]"
    text = "stac_api: earth-search\nbbox: [15.4, 47.0, 15.5, 47.08]\nyears: [2022]\n"
    assert job_from_yaml(f"{text}output: x.zarr\nanchor: {yaml_value}\n").anchor == expected
    assert make_job(**FIELDS).anchor == "auto", "the default"


@pytest.mark.parametrize("value", ["middle", [15], [15, "a"], True])
def test_a_bad_anchor_names_the_field_and_the_choices(value: object) -> None:
    with pytest.raises(InputError, match=r"anchor: anchor must be 'auto' .*'center'.*\[x, y\]"):
        make_job(**FIELDS, anchor=value)


def test_bounds_off_an_explicit_anchor_are_refused() -> None:
    on_centres = (15.0, 15.0, 315.0, 615.0)
    assert make_job(**FIELDS, resolution=30, bounds=on_centres, anchor="center").bounds
    assert make_job(**FIELDS, resolution=30, bounds=on_centres).anchor == "auto"  # as given
    with pytest.raises(InputError, match=r"bounds .* are not on the pixel grid of anchor 'edge'"):
        make_job(**FIELDS, resolution=30, bounds=on_centres, anchor="edge")
