"""Sensor harmonisation (Roy et al. 2016, ETM+ -> OLI): hand-computed values from the
published coefficients, and properties of the DN transform."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cubehub.compute.harmonize import (
    ROY2016_ETM_TO_OLI,
    check_harmonisation,
    harmonize_dn,
    harmonize_reflectance,
    is_harmonised_platform,
)
from cubehub.errors import InputError

# Landsat Collection 2 Level-2 surface reflectance encoding.
SCALE, OFFSET = 2.75e-5, -0.2


def test_the_coefficients_are_table_2_ols_etm_to_oli() -> None:
    # Roy et al. (2016) Table 2, OLS, OLI = intercept + slope * ETM+ (as the Earth Engine
    # community tutorial quotes them): written out again, so a typo in one place fails.
    assert dict(ROY2016_ETM_TO_OLI) == {
        "blue": (0.8474, 0.0003),
        "green": (0.8483, 0.0088),
        "red": (0.9047, 0.0061),
        "nir08": (0.8462, 0.0412),
        "swir16": (0.8937, 0.0254),
        "swir22": (0.9071, 0.0172),
    }


@pytest.mark.parametrize(
    ("band", "etm", "oli"),
    [
        ("blue", 0.02, 0.017248),  # 0.0003 + 0.8474 * 0.02
        ("green", 0.0475, 0.04909425),  # 0.0088 + 0.8483 * 0.0475
        ("red", 0.075, 0.0739525),  # 0.0061 + 0.9047 * 0.075
        ("nir08", 0.35, 0.33737),  # 0.0412 + 0.8462 * 0.35
        ("swir16", 0.2125, 0.21531125),  # 0.0254 + 0.8937 * 0.2125
        ("swir22", 0.13, 0.135123),  # 0.0172 + 0.9071 * 0.13
    ],
)
def test_reflectance_by_hand(band: str, etm: float, oli: float) -> None:
    assert harmonize_reflectance(etm, band) == pytest.approx(oli, abs=1e-12)


@pytest.mark.parametrize(
    ("band", "dn", "expected"),
    [
        # DN -> reflectance DN * 2.75e-5 - 0.2 -> the line -> (r + 0.2) / 2.75e-5, rounded.
        ("blue", 8000, 7900),  # 0.02 -> 0.017248 -> 7899.93
        ("green", 9000, 9058),  # 0.0475 -> 0.04909425 -> 9057.97
        ("red", 10000, 9962),  # 0.075 -> 0.0739525 -> 9961.91
        ("nir08", 20000, 19541),  # 0.35 -> 0.33737 -> 19540.73
        ("swir16", 15000, 15102),  # 0.2125 -> 0.21531125 -> 15102.23
        ("swir22", 12000, 12186),  # 0.13 -> 0.135123 -> 12186.29
    ],
)
def test_dn_by_hand(band: str, dn: int, expected: int) -> None:
    out = harmonize_dn(np.array([dn, 0], np.uint16), band, SCALE, OFFSET)
    assert out.dtype == np.uint16
    assert out.tolist() == [expected, 0]  # nodata stays nodata


def test_thermal_and_coastal_are_never_touched() -> None:
    dn = np.array([100, 40000], np.uint16)
    for band in ("lwir11", "coastal"):
        assert harmonize_dn(dn, band, 0.00341802, 149.0) is dn
        assert harmonize_reflectance(0.3, band) == 0.3


def test_a_valid_observation_never_becomes_nodata_or_wraps() -> None:
    # DN 1 (-0.19997) goes up, DN 65535 (1.602) down: both stay valid uint16.
    out = harmonize_dn(np.array([1, 65535], np.uint16), "blue", SCALE, OFFSET)
    assert out[0] > 0 and out[1] < 65535
    # A made-up encoding that would map below DN 1 is held at 1, not 0 (nodata).
    low = harmonize_dn(np.array([1], np.uint16), "blue", 1.0, 0.0)
    assert low.tolist() == [1]


def test_unknown_harmonisation_lists_the_choices() -> None:
    with pytest.raises(
        InputError, match=r"unknown harmonisation 'roy2017'; choose one of: roy2016"
    ):
        check_harmonisation("roy2017")
    with pytest.raises(InputError, match="roy2016"):
        harmonize_dn(np.array([1], np.uint16), "red", SCALE, OFFSET, name="roy2017")
    assert check_harmonisation(None) is None


@pytest.mark.parametrize(
    ("platform", "older"),
    [
        ("landsat-4", True),
        ("landsat-5", True),
        ("LANDSAT_7", True),
        ("Landsat 7", True),
        ("landsat-8", False),
        ("landsat-9", False),
        ("sentinel-2a", False),
    ],
)
def test_tm_and_etm_platforms(platform: str, older: bool) -> None:
    assert is_harmonised_platform(platform) is older


def _reference(dn: int, band: str) -> int:
    """One DN by the formula, in plain Python floats (round half to even, as numpy)."""
    slope, intercept = ROY2016_ETM_TO_OLI[band]
    value = round((intercept + slope * (dn * SCALE + OFFSET) - OFFSET) / SCALE)
    return min(max(value, 1), 65535)


@settings(max_examples=60, deadline=None)
@given(
    dn=hnp.arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 4))),
    older=st.lists(st.booleans(), min_size=6, max_size=6),
    band=st.sampled_from(sorted(ROY2016_ETM_TO_OLI)),
)
def test_oli_untouched_tm_etm_changed_exactly_by_the_formula(
    dn: np.ndarray, older: list[bool], band: str
) -> None:
    flags = np.array(older[: dn.shape[0]])[:, None, None]
    out = harmonize_dn(dn, band, SCALE, OFFSET, older=flags)
    assert out.dtype == dn.dtype and out.shape == dn.shape
    for t in range(dn.shape[0]):
        for d, o in zip(dn[t].ravel().tolist(), out[t].ravel().tolist(), strict=True):
            if d == 0 or not older[t]:
                assert o == d  # nodata and OLI observations as they were
            else:
                assert o == _reference(d, band)
    # Lazy on Dask, same numbers.
    lazy = harmonize_dn(da.from_array(dn, chunks=(1, 2, 2)), band, SCALE, OFFSET, older=flags)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), out)
