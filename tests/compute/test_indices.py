"""Spectral indices against spyndex's own computeIndex, lazy on Dask, and their errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import spyndex
import xarray as xr

from cubehub.compute.indices import (
    BAND_SYMBOLS,
    compute_indices,
    index_bands,
    supported_indices,
)
from cubehub.errors import InputError

#: Realistic surface reflectance ranges per band (vegetation, soil and water mixed).
RANGES = {
    "blue": (0.01, 0.15),
    "green": (0.02, 0.2),
    "red": (0.01, 0.3),
    "nir": (0.1, 0.6),
    "nir08": (0.1, 0.6),
    "swir16": (0.05, 0.4),
    "swir22": (0.03, 0.35),
}
CHECKED = ["NDVI", "NDWI", "NBR", "EVI", "SAVI", "NDMI"]


def _reflectance(shape: tuple[int, ...] = (3, 20, 24), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {b: rng.uniform(lo, hi, shape).astype(np.float32) for b, (lo, hi) in RANGES.items()}


def _spyndex_reference(name: str, bands: dict[str, np.ndarray], nir: str = "nir") -> np.ndarray:
    symbols = {"B": "blue", "G": "green", "R": "red", "N": nir, "S1": "swir16", "S2": "swir22"}
    params: dict[str, object] = {
        s: bands[b].astype(np.float64)
        for s, b in symbols.items()
        if s in spyndex.indices[name].bands
    }
    for constant in ("L", "g", "C1", "C2"):
        if constant in spyndex.indices[name].bands:
            params[constant] = spyndex.constants[constant].default
    return np.asarray(spyndex.computeIndex(name, params=params))


@pytest.mark.parametrize("lazy", [False, True])
def test_indices_match_spyndex(lazy: bool) -> None:
    bands = _reflectance()
    dims = ("time", "y", "x")
    data = {
        b: xr.DataArray(da.from_array(v, chunks=(1, 10, 12)) if lazy else v, dims=dims)
        for b, v in bands.items()
    }
    out = compute_indices(xr.Dataset(data), CHECKED)
    assert list(out.data_vars) == CHECKED
    for name in CHECKED:
        assert out[name].dtype == np.float32
        assert out[name].dims == dims
        assert isinstance(out[name].data, da.Array) is lazy
        expected = _spyndex_reference(name, bands)
        np.testing.assert_allclose(out[name].values, expected, rtol=2e-5, atol=1e-6, err_msg=name)
    # Spot check one formula by hand, so a shared mistake with spyndex would show.
    n, r = bands["nir"].astype(np.float64), bands["red"].astype(np.float64)
    np.testing.assert_allclose(out["NDVI"].values, (n - r) / (n + r), rtol=1e-6)


def test_constants_default_and_override() -> None:
    bands = _reflectance(seed=1)
    n, r = bands["nir"].astype(np.float64), bands["red"].astype(np.float64)
    arrays = {b: xr.DataArray(v, dims=("t", "y", "x")) for b, v in bands.items()}
    spyndex_default = compute_indices(arrays, ["SAVI"])["SAVI"].values
    np.testing.assert_allclose(spyndex_default, 2.0 * (n - r) / (n + r + 1.0), rtol=1e-5)
    classic = compute_indices(arrays, ["SAVI"], constants={"L": 0.5})["SAVI"].values
    np.testing.assert_allclose(classic, 1.5 * (n - r) / (n + r + 0.5), rtol=1e-5)
    with pytest.raises(InputError, match=r"unknown index constants \['Q'\]"):
        compute_indices(arrays, ["SAVI"], constants={"Q": 1.0})


def test_landsat_nir08_stands_for_nir() -> None:
    bands = _reflectance(seed=2)
    landsat = {b: xr.DataArray(bands[b], dims=("t", "y", "x")) for b in ("red", "nir08", "swir22")}
    out = compute_indices(landsat, ["NDVI", "NBR"])
    np.testing.assert_allclose(
        out["NDVI"].values, _spyndex_reference("NDVI", bands, nir="nir08"), rtol=2e-5
    )
    assert index_bands(["NDVI"], available={"red", "nir08"}) == {"red", "nir08"}
    assert index_bands(["NDVI"]) == {"red", "nir"}
    # With both present, the broad NIR band wins.
    both = {**landsat, "nir": xr.DataArray(bands["nir"], dims=("t", "y", "x"))}
    np.testing.assert_allclose(
        compute_indices(both, ["NDVI"])["NDVI"].values, _spyndex_reference("NDVI", bands), rtol=2e-5
    )


def test_index_bands() -> None:
    assert index_bands(["NDVI", "NBR", "NDMI"]) == {"nir", "red", "swir16", "swir22"}
    assert index_bands(["EVI"]) == {"blue", "red", "nir"}
    assert index_bands(["NDWI"]) == {"green", "nir"}
    assert index_bands("NDVI") == {"nir", "red"}
    known = set(supported_indices())
    assert set(CHECKED) <= known
    assert "kNDVI" not in known  # kernel index: needs precomputed kernels
    for name in known:
        symbols = set(spyndex.indices[name].bands)
        assert symbols <= set(BAND_SYMBOLS) | set(spyndex.constants), name


def test_unknown_and_unsupported_index_names() -> None:
    with pytest.raises(InputError, match=r"unknown spectral index 'ndvi'; did you mean NDVI"):
        index_bands(["ndvi"])
    with pytest.raises(InputError, match=r"'NDVII'; did you mean .*NDVI"):
        compute_indices({}, ["NDVII"])
    with pytest.raises(
        InputError, match=r"'kNDVI' needs inputs cubehub does not provide \(kNN, kNR\)"
    ):
        index_bands(["kNDVI"])
    with pytest.raises(InputError, match="valid names are: "):
        index_bands(["QQQQQQQQ"])
    with pytest.raises(InputError, match="no spectral index requested"):
        index_bands([])


def _exploding(shape: tuple[int, ...]) -> da.Array:
    """A lazy array whose computation fails: proves that nothing was computed."""

    def boom(block: np.ndarray) -> np.ndarray:
        raise AssertionError("an index computed pixels too early")

    lazy: da.Array = da.map_blocks(
        boom, da.zeros(shape, chunks=shape, dtype=np.float32), dtype=np.float32
    )
    return lazy


def test_missing_bands_fail_before_any_compute() -> None:
    lazy = {b: xr.DataArray(_exploding((2, 4, 4)), dims=("t", "y", "x")) for b in ("red", "green")}
    with pytest.raises(InputError, match="NDVI needs nir or nir08; NBR needs nir or nir08, swir22"):
        compute_indices(lazy, ["NDVI", "NBR"])
    with pytest.raises(InputError, match="Available bands: green, red"):
        compute_indices(lazy, ["NDWI"])
    lazy["nir"] = xr.DataArray(_exploding((2, 4, 4)), dims=("t", "y", "x"))
    out = compute_indices(lazy, ["NDVI", "NDWI"])  # builds the graph, runs nothing
    assert isinstance(out["NDVI"].data, da.Array)
    with pytest.raises(AssertionError, match="too early"):
        out["NDVI"].compute()


def test_composite_bands_with_band_labels_and_integer_input() -> None:
    """The of-composite mode: bands selected from one DataArray keep a scalar ``band``
    label, which must not leak into the index; non-float input is cast to float32."""
    rng = np.random.default_rng(4)
    cube = xr.DataArray(
        rng.uniform(0.02, 0.5, (4, 2, 3, 5, 6)).astype(np.float64),
        dims=("season", "percentile", "band", "y", "x"),
        coords={"band": ["red", "nir", "swir22"], "percentile": [25.0, 75.0]},
    )
    out = compute_indices({b: cube.sel(band=b) for b in ["red", "nir", "swir22"]}, ["NDVI", "NBR"])
    assert "band" not in out.coords
    assert list(out.percentile.values) == [25.0, 75.0]
    assert out["NBR"].dtype == np.float32
    n, s2 = cube.sel(band="nir").values, cube.sel(band="swir22").values
    np.testing.assert_allclose(out["NBR"].values, (n - s2) / (n + s2), rtol=1e-5, atol=1e-6)
    dns = xr.Dataset(
        {b: (("y", "x"), np.full((2, 2), v, np.uint16)) for b, v in [("red", 1000), ("nir", 3000)]}
    )
    assert compute_indices(dns, ["NDVI"])["NDVI"].values == pytest.approx(np.full((2, 2), 0.5))
