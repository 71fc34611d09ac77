"""Both store kinds keep the same contract (cubehub.testing.store_contract)."""

from __future__ import annotations

from cubehub.testing.store_contract import StoreContract


class TestZarrStore(StoreContract):
    store_kind = "zarr"


class TestZarrFormat2Store(StoreContract):
    store_kind = "zarr"
    zarr_format = 2


class TestIcechunkStore(StoreContract):
    store_kind = "icechunk"
