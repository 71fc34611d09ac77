"""Check the Zarr store the end-to-end DaskJob wrote (S3 reached through `kubectl port-forward`).

Passes when the store opens, every data variable has data, and the seasonal medians cover most
of the demo tile (the synthetic archive has enough clear observations everywhere).

Usage: python check_output.py s3://outputs/demo.zarr
"""

from __future__ import annotations

import sys

import xarray as xr


def main(url: str) -> None:
    ds = xr.open_zarr(url, storage_options={"anon": False})
    assert ds.data_vars, f"{url} holds no data variables"
    medians = [name for name in ds.data_vars if "p50" in str(name)]
    assert medians, f"no p50 variable in {sorted(map(str, ds.data_vars))}"
    for name in medians:
        covered = float(ds[name].notnull().mean())
        print(f"{name}: {covered:.1%} of pixels have a value")
        assert covered > 0.5, f"{name} covers only {covered:.1%} of the tile"


if __name__ == "__main__":
    main(sys.argv[1])
