"""One task per season and chunk: every band's percentiles equal those of the band masked
and reduced on its own (numpy, the kernel's reference), scaled as the composite scales."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from cubehub.compute.percentile import percentiles
from cubehub.compute.season_percentiles import BandEncoding, band_percentiles_dask
from cubehub.errors import InputError

Q = (25.0, 50.0, 75.0)


def _reference(
    values: np.ndarray, keep: np.ndarray | None, enc: BandEncoding
) -> tuple[np.ndarray, np.ndarray]:
    """The band masked as ``xarray.where`` masks it, then :func:`percentiles`, then scaled."""
    if keep is not None:
        if enc.nodata is None:
            values = np.where(keep, values, np.nan)  # integers become float64, as where gives
        else:
            values = np.where(keep, values, values.dtype.type(enc.nodata))
    out, count = percentiles(values, Q, nodata=enc.nodata, threads=1)
    return out * enc.scale + enc.offset, count


@pytest.mark.parametrize("masked", [True, False])
def test_every_band_of_a_season_equals_its_own_masked_percentiles(masked: bool) -> None:
    rng = np.random.default_rng(3)
    steps, rows, cols = 7, 40, 36
    dns = rng.integers(0, 9000, (steps, rows, cols), dtype=np.uint16)  # 0 is nodata
    counts = rng.integers(0, 40, (steps, rows, cols), dtype=np.int32)  # no nodata at all
    refl = rng.random((steps, rows, cols), dtype=np.float32)
    refl[rng.random(refl.shape) < 0.2] = np.nan
    keep = rng.random((steps, rows, cols)) < 0.7 if masked else None
    bands: list[np.ndarray] = [dns, counts, refl]
    encodings = [BandEncoding(0, 2.75e-5, -0.2), BandEncoding(None), BandEncoding(None, 0.5, 1.0)]
    # Time in uneven chunks, space in chunks the mask does not share: each task gathers both.
    chunked = [da.from_array(b, chunks=((2, 4, 1), 16, 20)) for b in bands]
    mask = None if keep is None else da.from_array(keep, chunks=(3, 20, 12))
    values, count = band_percentiles_dask(chunked, encodings, Q, keep=mask)
    got = da.compute(*values, count)
    for band, enc, out in zip(bands, encodings, [np.asarray(g) for g in got[:-1]], strict=True):
        want, want_count = _reference(band, keep, enc)
        assert out.dtype == np.float32 and out.shape == (len(Q), rows, cols)
        np.testing.assert_array_equal(out, want)
        if band is dns:
            np.testing.assert_array_equal(got[-1], want_count)
    assert np.isfinite(got[0]).mean() > 0.5  # the comparison was not of NaN with NaN


def test_a_season_without_observations_is_nan_with_count_zero() -> None:
    empty = da.zeros((0, 8, 8), dtype=np.uint16, chunks=(1, 4, 4))
    values, count = band_percentiles_dask(
        [empty], [BandEncoding(0)], Q, keep=da.zeros((0, 8, 8), dtype=bool, chunks=(1, 4, 4))
    )
    out, n = da.compute(values[0], count)
    assert np.isnan(out).all() and (n == 0).all()


def test_bands_of_different_shapes_are_refused() -> None:
    with pytest.raises(InputError, match="one shape"):
        band_percentiles_dask(
            [da.zeros((3, 4, 4), np.uint16), da.zeros((3, 4, 5), np.uint16)],
            [BandEncoding(0), BandEncoding(0)],
            Q,
        )
