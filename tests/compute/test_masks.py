"""Cloud masks from Sentinel-2 SCL and Landsat QA_PIXEL, NumPy and Dask paths."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from cubehub.compute.masks import (
    DEFAULT_SCL_KEEP,
    SCL_CLASSES,
    QaPixelMaskRule,
    SclMaskRule,
    clear_mask,
    clear_mask_xr,
    dilation_radius_px,
    disk,
    rule_for_kind,
)
from cubehub.errors import InputError

FILL, DILATED, CIRRUS, CLOUD, SHADOW, SNOW, CLEAR, WATER = (1 << b for b in range(8))


def _offsets_within(radius: int) -> set[tuple[int, int]]:
    """Reference disk, written out: every (dy, dx) with dy² + dx² <= radius²."""
    return {
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy * dy + dx * dx <= radius * radius
    }


def _not_clear(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in zip(*np.nonzero(~mask), strict=True)}


# -- Sentinel-2 SCL -----------------------------------------------------------------------


def test_scl_classes_and_default_keep() -> None:
    assert sorted(SCL_CLASSES) == list(range(12))
    assert SCL_CLASSES[0] == "no data" and SCL_CLASSES[11] == "snow or ice"
    every_class = np.arange(12, dtype=np.uint8).reshape(3, 4)
    clear = clear_mask(every_class, SclMaskRule(), pixel_size_m=20)
    assert clear.dtype == bool
    assert set(every_class[clear].tolist()) == set(DEFAULT_SCL_KEEP) == {4, 5, 6, 7, 11}


def test_scl_custom_keep_and_float_nan_is_nodata() -> None:
    scl = np.array([[4, 5, 6], [7, 11, 0]], dtype=np.float32)
    scl[1, 2] = np.nan
    clear = clear_mask(scl, SclMaskRule(keep=(4, 6)), pixel_size_m=20)
    assert clear.tolist() == [[True, False, True], [False, False, False]]


def test_scl_cloud_dilation_is_an_exact_disk() -> None:
    """25 m at 10 m pixels: radius ceil(2.5) = 3 pixels."""
    scl = np.full((15, 17), 4, dtype=np.uint8)
    scl[7, 8] = 9
    clear = clear_mask(scl, SclMaskRule(dilate_cloud_m=25), pixel_size_m=10)
    expected = {(7 + dy, 8 + dx) for dy, dx in _offsets_within(3)}
    assert _not_clear(clear) == expected
    assert len(expected) == 29
    # No buffer: only the cloud pixel itself.
    assert _not_clear(clear_mask(scl, SclMaskRule(), pixel_size_m=10)) == {(7, 8)}


def test_scl_shadow_and_cloud_buffers_are_separate() -> None:
    scl = np.full((12, 12), 5, dtype=np.uint8)
    scl[2, 2] = 8  # cloud, buffered by 20 m at 10 m = 2 px
    scl[9, 9] = 3  # shadow, buffered by 10 m = 1 px
    scl[5, 10] = 2  # dark area: dropped, never buffered
    scl[0, 11] = 0  # no data: dropped, never buffered
    rule = SclMaskRule(dilate_cloud_m=20, dilate_shadow_m=10)
    got = _not_clear(clear_mask(scl, rule, pixel_size_m=10))
    cloud = {(2 + dy, 2 + dx) for dy, dx in _offsets_within(2)}
    shadow = {(9 + dy, 9 + dx) for dy, dx in _offsets_within(1)}
    assert got == cloud | shadow | {(5, 10), (0, 11)}


def test_scl_buffer_at_the_edge_and_per_time_step() -> None:
    scl = np.full((2, 6, 6), 4, dtype=np.uint8)
    scl[0, 0, 0] = 10  # cirrus in the corner of the first time step only
    clear = clear_mask(scl, SclMaskRule(dilate_cloud_m=15), pixel_size_m=10)  # radius 2
    assert _not_clear(clear[0]) == {
        (dy, dx) for dy, dx in _offsets_within(2) if dy >= 0 and dx >= 0
    }
    assert clear[1].all()


def test_scl_rule_validation() -> None:
    with pytest.raises(InputError, match=r"unknown SCL classes \[12\]"):
        SclMaskRule(keep=(4, 12))
    with pytest.raises(InputError, match="must not contain 0"):
        SclMaskRule(keep=(0, 4))
    with pytest.raises(InputError, match=r"keeps classes \[10\].*also buffers"):
        SclMaskRule(keep=(4, 10))
    with pytest.raises(InputError, match="dilate_cloud_m must be a finite distance"):
        SclMaskRule(dilate_cloud_m=-5)
    with pytest.raises(InputError, match="dilate_shadow_m"):
        SclMaskRule(dilate_shadow_m=float("nan"))
    with pytest.raises(InputError, match="pixel_size_m must be a positive"):
        clear_mask(np.zeros((2, 2), np.uint8), SclMaskRule(), pixel_size_m=0)
    with pytest.raises(InputError, match="at least 2 dims"):
        clear_mask(np.zeros(4, np.uint8), SclMaskRule(), pixel_size_m=10)
    with pytest.raises(InputError, match="integer codes"):
        clear_mask(np.zeros((2, 2), bool), SclMaskRule(), pixel_size_m=10)


def test_radius_and_disk() -> None:
    assert dilation_radius_px(0, 10) == 0
    assert dilation_radius_px(25, 10) == 3
    assert dilation_radius_px(30, 10) == 3  # not 4 from a rounding error
    assert dilation_radius_px(0.3, 0.1) == 3
    assert dilation_radius_px(300, 20) == 15
    assert dilation_radius_px(1, 30) == 1
    assert disk(0).tolist() == [[True]]
    assert disk(1).tolist() == [[False, True, False], [True, True, True], [False, True, False]]
    assert int(disk(3).sum()) == len(_offsets_within(3))


# -- Landsat QA_PIXEL ---------------------------------------------------------------------


def test_qa_pixel_bits() -> None:
    cases = {
        CLEAR: True,  # clear land
        CLEAR | WATER: True,
        CLEAR | SNOW: True,  # snow kept by default
        CLEAR | (3 << 8): True,  # a confidence field alone does not reject
        FILL: False,
        DILATED: False,
        CIRRUS | CLEAR: False,
        CLOUD | (3 << 8): False,
        SHADOW | CLEAR: False,
        0: False,  # impossible in real data: stackstac's fill where no item has pixels
    }
    qa = np.array([list(cases)], dtype=np.uint16)
    assert clear_mask(qa, QaPixelMaskRule(), pixel_size_m=30)[0].tolist() == list(cases.values())
    no_snow = clear_mask(qa, QaPixelMaskRule(reject_bits=(0, 1, 2, 3, 4, 5)), pixel_size_m=30)
    assert no_snow[0].tolist()[2] is False
    # The fill bit rejects even when not listed.
    fill_kept = clear_mask(
        np.array([[FILL | CLEAR]], np.uint16),
        QaPixelMaskRule(reject_bits=(2, 3, 4)),
        pixel_size_m=30,
    )
    assert not fill_kept.any()


def test_qa_pixel_dilation() -> None:
    qa = np.full((11, 11), CLEAR, dtype=np.uint16)
    qa[5, 5] = CLOUD
    qa[0, 10] = SHADOW
    rule = QaPixelMaskRule(dilate_cloud_m=60, dilate_shadow_m=30)  # 2 px and 1 px at 30 m
    got = _not_clear(clear_mask(qa, rule, pixel_size_m=30))
    cloud = {(5 + dy, 5 + dx) for dy, dx in _offsets_within(2)}
    shadow = {(dy, 10 + dx) for dy, dx in _offsets_within(1) if dy >= 0 and dx <= 0}
    assert got == cloud | shadow
    # USGS's dilated-cloud bit is rejected but not buffered again.
    qa[5, 5] = DILATED
    got = _not_clear(clear_mask(qa, QaPixelMaskRule(dilate_cloud_m=60), pixel_size_m=30))
    assert got == {(5, 5), (0, 10)}


def test_qa_rule_validation_and_rule_for_kind() -> None:
    with pytest.raises(InputError, match=r"invalid bits \[9\]"):
        QaPixelMaskRule(reject_bits=(0, 9))
    with pytest.raises(InputError, match=r"buffers bits \[2\].*does not reject"):
        QaPixelMaskRule(reject_bits=(0, 3, 4))
    assert QaPixelMaskRule(reject_bits=(0, 3, 4), cloud_bits=(3,)).cloud_bits == (3,)
    scl_rule = rule_for_kind("scl", dilate_cloud_m=300, dilate_shadow_m=90)
    assert isinstance(scl_rule, SclMaskRule) and scl_rule.dilate_cloud_m == 300
    qa_rule = rule_for_kind("qa_pixel", dilate_shadow_m=90)
    assert isinstance(qa_rule, QaPixelMaskRule) and qa_rule.dilate_shadow_m == 90
    with pytest.raises(InputError, match="unknown mask kind 'fmask'"):
        rule_for_kind("fmask")


# -- xarray / Dask ------------------------------------------------------------------------


def _random_scl(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = [0, 2, 3, 4, 5, 6, 8, 9, 10, 11]
    weights = [0.02, 0.02, 0.02, 0.5, 0.2, 0.1, 0.01, 0.01, 0.02, 0.1]
    return rng.choice(classes, size=shape, p=weights).astype(np.uint8)


@pytest.mark.parametrize(
    ("chunks", "cloud_m", "shadow_m"),
    [
        ((1, 16, 15), 50.0, 20.0),  # radius 5 and 2 across many chunk borders
        ((2, 7, 64), 90.0, 0.0),  # radius 9, chunks smaller than the overlap
        ((1, 40, 40), 0.0, 0.0),  # no buffer: no overlap at all
    ],
)
def test_dask_path_equals_numpy_across_chunks(
    chunks: tuple[int, int, int], cloud_m: float, shadow_m: float
) -> None:
    scl = _random_scl((3, 61, 70), seed=7)
    rule = SclMaskRule(dilate_cloud_m=cloud_m, dilate_shadow_m=shadow_m)
    expected = clear_mask(scl, rule, pixel_size_m=10)
    coords = {"time": np.arange(3), "y": np.arange(61) * -10.0, "x": np.arange(70) * 10.0}
    mask = xr.DataArray(da.from_array(scl, chunks=chunks), dims=("time", "y", "x"), coords=coords)
    clear = clear_mask_xr(mask, rule, 10)
    assert isinstance(clear.data, da.Array), "the result must stay lazy"
    assert clear.chunks == mask.chunks
    assert clear.dims == mask.dims and clear.name == "clear"
    np.testing.assert_array_equal(clear.x, mask.x)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(clear.values, expected)
    # The buffers must actually remove pixels here, or the comparison would prove little.
    if cloud_m:
        assert (~expected).sum() > (~clear_mask(scl, SclMaskRule(), pixel_size_m=10)).sum()


def test_dask_path_for_qa_pixel_and_numpy_backed_input() -> None:
    rng = np.random.default_rng(3)
    qa = rng.choice(
        [CLEAR, CLEAR | WATER, CLOUD, SHADOW, FILL],
        size=(2, 33, 29),
        p=[0.8, 0.1, 0.04, 0.04, 0.02],
    )
    qa = qa.astype(np.uint16)
    rule = QaPixelMaskRule(dilate_cloud_m=90, dilate_shadow_m=30)
    expected = clear_mask(qa, rule, pixel_size_m=30)
    lazy = xr.DataArray(da.from_array(qa, chunks=(1, 8, 9)), dims=("time", "y", "x"))
    np.testing.assert_array_equal(clear_mask_xr(lazy, rule, 30).values, expected)
    eager = clear_mask_xr(xr.DataArray(qa, dims=("time", "y", "x")), rule, 30)
    assert isinstance(eager.data, np.ndarray)
    np.testing.assert_array_equal(eager.values, expected)
