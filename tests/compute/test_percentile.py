"""The percentile kernel against a slow, obviously-correct per-pixel reference."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from random import Random
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pytest
from dask.base import compute
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cubehub.compute.percentile import (
    _kernel,
    _sorting_network,
    percentiles,
    percentiles_dask,
)
from cubehub.errors import InputError

DTYPES: list[type[np.number[Any]]] = [
    np.uint8,
    np.uint16,
    np.int16,
    np.int32,
    np.float32,
    np.float64,
]
#: hypothesis' float width for a float dtype's item size in bytes.
FLOAT_WIDTHS: dict[int, Literal[16, 32, 64]] = {2: 16, 4: 32, 8: 64}
SETTINGS = settings(max_examples=120, deadline=None)


def reference(
    values: np.ndarray, q: list[float], nodata: float | None, method: str, min_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: drop missing values, then np.percentile (float64) or the nearest rank."""
    flat = values.reshape(values.shape[0], -1)
    out = np.full((len(q), flat.shape[1]), np.nan, np.float32)
    count = np.zeros(flat.shape[1], np.uint16)
    for p in range(flat.shape[1]):
        column = flat[:, p]
        valid = ~np.isnan(column) if column.dtype.kind == "f" else np.ones(len(column), bool)
        if nodata is not None:
            valid &= column != column.dtype.type(nodata)
        x = np.sort(column[valid].astype(np.float64))
        count[p] = n = len(x)
        if n < min_count:
            continue
        if method == "linear":
            out[:, p] = np.percentile(x, q, method="linear").astype(np.float32)
        else:
            ranks = [max(1, math.ceil(Fraction(pc) * n / 100)) for pc in q]
            out[:, p] = [np.float32(x[r - 1]) for r in ranks]
    return out.reshape(len(q), *values.shape[1:]), count.reshape(values.shape[1:])


@st.composite
def stacks(draw: st.DrawFn, max_steps: int = 70) -> dict[str, Any]:
    """A (T, *spatial) stack with gaps, all-missing pixels, ties and extreme values."""
    dtype: np.dtype[Any] = np.dtype(draw(st.sampled_from(DTYPES)))
    steps = draw(st.integers(1, max_steps))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=2)))
    shape = (steps, *spatial)
    nodata: float | None
    missing_value: float | None
    if dtype.kind == "f":
        finite = st.floats(
            width=FLOAT_WIDTHS[dtype.itemsize], allow_nan=False, allow_infinity=False
        )
        elements = st.one_of(finite, st.sampled_from([0.0, 1.0, -1.0, 0.5]))
        nodata = draw(st.sampled_from([None, -9999.0, 0.0]))
        missing_value = draw(st.sampled_from([np.nan] + ([] if nodata is None else [nodata])))
    else:
        info = np.iinfo(dtype)
        extremes = [info.min, info.max, 0, 1]  # info.max is the kernel's sentinel
        elements = st.one_of(st.integers(int(info.min), int(info.max)), st.sampled_from(extremes))
        nodata = draw(st.sampled_from([None, *extremes]))
        missing_value = nodata
    values = draw(hnp.arrays(dtype, shape, elements=elements))
    if missing_value is not None:
        gaps = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
        if len(spatial) > 0 and draw(st.booleans()):
            gaps[(slice(None),) + (0,) * len(spatial)] = True  # one pixel with no data at all
        values[gaps] = missing_value
    q = draw(
        st.lists(
            st.one_of(st.sampled_from([0, 100, 50, 25, 75, 2.5, 33.3]), st.floats(0, 100)),
            min_size=1,
            max_size=5,
        )
    )
    return {
        "values": values,
        "q": q,
        "nodata": nodata,
        "method": draw(st.sampled_from(["linear", "nearest"])),
        "min_count": draw(st.integers(1, 4)),
    }


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    out, count = got
    want_out, want_count = want
    assert out.dtype == np.float32 and out.shape == want_out.shape
    assert count.dtype == np.uint16 and count.shape == want_count.shape
    np.testing.assert_array_equal(count, want_count)
    np.testing.assert_array_equal(out, want_out)  # exact; NaN where NaN


@SETTINGS
@given(stacks())
def test_matches_reference(case: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # b - a overflows for huge floats
        want = reference(**case)
    assert_same(percentiles(**case), want)


@settings(max_examples=40, deadline=None)
@given(stacks(), st.randoms(use_true_random=False))
def test_order_of_observations_does_not_matter(case: dict[str, Any], random: Random) -> None:
    order = list(range(case["values"].shape[0]))
    random.shuffle(order)
    shuffled = dict(case, values=case["values"][order])
    assert_same(percentiles(**shuffled), percentiles(**case))


@settings(max_examples=30, deadline=None)
@given(stacks(max_steps=30), st.data())
def test_dask_equals_numpy_for_any_chunking(case: dict[str, Any], data: st.DataObject) -> None:
    values = case["values"]
    chunks = tuple(data.draw(st.integers(1, max(1, n))) for n in values.shape)
    lazy = da.from_array(values, chunks=chunks)  # several time chunks: rechunked on axis 0
    out, count = percentiles_dask(**dict(case, values=lazy))
    nq = len(case["q"])
    assert out.chunks == ((nq,), *lazy.chunks[1:])
    assert count.chunks == lazy.chunks[1:]
    with dask.config.set(scheduler="threads"):
        got = compute(out, count)
    assert_same(got, percentiles(**case))


def test_known_values_linear_and_nearest() -> None:
    # One pixel, observations 10..40 plus missing ones (0 = nodata).
    values = np.array([0, 40, 10, 0, 30, 20], np.uint16)[:, np.newaxis]
    out, count = percentiles(values, [0, 25, 50, 75, 100], nodata=0)
    assert count.tolist() == [4]
    assert out[:, 0].tolist() == [10.0, 17.5, 25.0, 32.5, 40.0]
    out, _ = percentiles(values, [0, 25, 50, 75, 100], nodata=0, method="nearest")
    assert out[:, 0].tolist() == [10.0, 10.0, 20.0, 30.0, 40.0]


def test_single_observation_is_every_percentile() -> None:
    values = np.array([[7, 0, -3]], np.int32)
    for method in ("linear", "nearest"):
        out, count = percentiles(values, [0, 33.3, 100], nodata=0, method=method)
        assert count.tolist() == [1, 0, 1]
        assert out[:, [0, 2]].tolist() == [[7.0, -3.0]] * 3
        assert np.isnan(out[:, 1]).all()


def test_values_equal_to_the_sentinel_still_count() -> None:
    # 65535 is the uint16 sort sentinel; here it is real data, and 0 marks gaps.
    values = np.array([[65535, 0], [0, 0], [100, 0], [65535, 7]], np.uint16)
    out, count = percentiles(values, [0, 50, 100], nodata=0, min_count=1)
    assert count.tolist() == [3, 1]
    assert out[:, 0].tolist() == [100.0, 65535.0, 65535.0]
    assert out[:, 1].tolist() == [7.0, 7.0, 7.0]


def test_infinities_are_observations() -> None:
    values = np.array([[1, np.inf, -np.inf], [np.inf, 2, 3], [np.nan, 5, np.inf]])
    q = [0, 25, 50, 100]
    out, count = percentiles(values, q)
    assert count.tolist() == [2, 3, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's inf - inf
        want = np.nanpercentile(values, q, axis=0).astype(np.float32)
    np.testing.assert_array_equal(out, want)  # NaN where numpy interpolates near inf
    out, _ = percentiles(values, q, method="nearest")
    assert out.tolist() == [[1, 2, -np.inf], [1, 2, -np.inf], [1, 5, 3], [np.inf, np.inf, np.inf]]


def test_min_count_masks_but_still_counts() -> None:
    values = np.array([[1, 1, 0], [2, 0, 0], [3, 0, 0]], np.int16)
    out, count = percentiles(values, [50], nodata=0, min_count=2)
    assert count.tolist() == [3, 1, 0]
    assert out[0, 0] == 2.0
    assert np.isnan(out[0, 1:]).all()


def test_float_nodata_and_nan_are_both_missing() -> None:
    values = np.array([np.nan, -9999.0, 4.0, 2.0, np.inf], np.float32)
    out, count = percentiles(values, [0, 25], nodata=-9999.0)
    assert count.shape == () and int(count) == 3
    assert out.tolist() == [2.0, 3.0]
    out, count = percentiles(values, [0, 25], nodata=np.inf)
    assert int(count) == 3
    assert out.tolist() == [-9999.0, -4998.5]


def test_threads_split_pixels_without_changing_results() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 10_000, (7, 300, 500), dtype=np.uint16)  # > 2 x 64k pixels
    one = percentiles(values, [25, 50, 75], nodata=0, threads=1)
    two = percentiles(values, [25, 50, 75], nodata=0, threads=2)
    assert_same(two, one)
    want, _ = reference(values[:, :3, :4], [25, 50, 75], 0, "linear", 1)
    np.testing.assert_array_equal(one[0][:, :3, :4], want)


def test_readonly_and_non_contiguous_input() -> None:
    rng = np.random.default_rng(2)
    base = rng.integers(0, 50, (6, 9, 5), dtype=np.uint8)
    view = base.transpose(0, 2, 1)[:, ::2]
    view.flags.writeable = False
    assert_same(percentiles(view, [10, 90], nodata=0), reference(view, [10, 90], 0, "linear", 1))


def test_kernel_is_compiled_without_the_gil() -> None:
    assert _kernel.targetoptions["nogil"] is True
    values = da.from_array(np.arange(24, dtype=np.uint16).reshape(6, 2, 2), chunks=(6, 1, 2))
    with dask.config.set(scheduler="threads"):
        out, count = compute(*percentiles_dask(values, [50]))
    assert out[0].tolist() == [[10.0, 11.0], [12.0, 13.0]]
    assert count.tolist() == [[6, 6], [6, 6]]


@pytest.mark.parametrize("size", range(1, 15))
def test_sorting_network_sorts_every_zero_one_input(size: int) -> None:
    # The 0-1 principle: a comparator network that sorts all 2**n 0/1 inputs sorts anything.
    columns = (np.arange(2**size)[np.newaxis, :] >> np.arange(size)[:, np.newaxis]) & 1
    for lower, upper in _sorting_network(size):
        low = np.minimum(columns[lower], columns[upper])
        columns[upper] = np.maximum(columns[lower], columns[upper])
        columns[lower] = low
    assert (np.diff(columns, axis=0) >= 0).all()


def test_empty_time_axis_gives_nan_and_zero_count() -> None:
    out, count = percentiles(np.zeros((0, 2, 3), np.float32), [50])
    assert out.shape == (1, 2, 3) and np.isnan(out).all()
    assert count.tolist() == [[0, 0, 0], [0, 0, 0]]
    out, count = percentiles(np.zeros((5, 0, 3), np.uint8), [50])
    assert out.shape == (1, 0, 3) and count.shape == (0, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": [50, 101]}, r"outside \[0, 100\]"),
        ({"q": [-1]}, r"outside \[0, 100\]"),
        ({"q": [float("nan")]}, r"outside \[0, 100\]"),
        ({"q": []}, "q is empty"),
        ({"q": 50}, "sequence of percentiles"),
        ({"q": ["median"]}, "must hold numbers"),
        ({"min_count": 0}, "min_count must be an integer >= 1"),
        ({"min_count": 1.5}, "min_count must be an integer >= 1"),
        ({"method": "midpoint"}, "valid: linear, nearest"),
        ({"nodata": -1}, "cannot occur in uint16"),
        ({"nodata": 0.5}, "cannot occur in uint16"),
        ({"nodata": "0"}, "nodata must be a number"),
        ({"values": np.zeros((3, 2), np.float32), "nodata": 1e40}, "overflows to infinity"),
        ({"values": da.zeros((3, 2), dtype=np.uint16)}, "use percentiles_dask"),
        ({"threads": 0}, "threads must be a positive integer"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs: dict[str, Any], message: str) -> None:
    args = {"values": np.zeros((3, 2), np.uint16), "q": [50], **kwargs}
    with pytest.raises(InputError, match=message):
        percentiles(**args)


def test_bad_inputs_raise_before_any_compute() -> None:
    with pytest.raises(InputError, match="dtype int64 are not supported"):
        percentiles(np.zeros((3, 2), np.int64), [50])
    with pytest.raises(InputError, match="exceed 65535"):
        percentiles(np.zeros((65536, 1), np.uint8), [50])
    with pytest.raises(InputError, match="need at least a time axis"):
        percentiles(np.float32(1), [50])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="takes a dask array"):
        percentiles_dask(np.zeros((3, 2), np.uint16), [50])  # type: ignore[arg-type]
    unknown = da.from_array(np.arange(6, dtype=np.uint8), chunks=3)
    unknown = unknown[unknown > 2]
    with pytest.raises(InputError, match="compute_chunk_sizes"):
        percentiles_dask(unknown, [50])
    # A lazy array is validated when the graph is built, not when it runs.
    lazy = da.zeros((4, 1000, 1000), dtype=np.uint16, chunks=(1, 500, 500))
    with pytest.raises(InputError, match=r"outside \[0, 100\]"):
        percentiles_dask(lazy, [0.25, 1.5, 250])
