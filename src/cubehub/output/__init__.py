"""Composite stores and what is made from them.

``storage`` (URLs, options, credentials, write probes) -> ``encoding`` (dtypes, CF
attributes, chunks, codecs) and ``completion`` (per-tile records) -> ``layout`` (the rules
both store kinds share) -> ``zarr_store`` / ``icechunk_store`` -> ``open`` (the one place
that picks a store kind); ``stac_records``, ``info`` and ``quicklook`` read stores."""
