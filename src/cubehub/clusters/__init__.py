"""Where the work runs: Dask clusters (local, an address, the dask-kubernetes operator),
their settings, version guards, Kubernetes manifests, progress and Ctrl-C handling.

The function users call is :func:`cubehub.cluster` (defined in ``backends``); this package
is named in the plural so that it never shadows that function."""
