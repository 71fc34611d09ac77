"""Apply a trained classifier to a composite store, tile by tile: a class map and per-class
probabilities in a map store (:mod:`cubehub.output.map_store`), resumable.

Before any pixel is read: the model is loaded, its feature names are looked up in the
store (a clear error names the missing ones), and the output is created or matched.
Then each tile of the source whose every season the model uses is complete is predicted
on Dask, chunk by chunk (memory: one chunk of all features per task), written, and
recorded; tiles already recorded are skipped, and source tiles still incomplete are left
for a later run. Pixels with a missing feature (no clear observation) stay unclassified.

Stored: ``predicted_class`` (y, x), uint8 codes 0..n-1 into the ``class`` coordinate
(``flag_values``/``flag_meanings``), 255 where unclassified; ``probability`` (class, y, x),
uint8 with ``scale_factor`` 0.01 (percent steps), 255 missing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import compute
from dask.delayed import delayed

from cubehub.credentials import redact
from cubehub.errors import InputError
from cubehub.grid import SPATIAL_DIMS
from cubehub.learn.features import Feature, check_features, feature_array
from cubehub.learn.model import Model, load_model
from cubehub.output.map_store import MapStore
from cubehub.output.open import open_composite, store_records

__all__ = ["CLASS_FILL", "PredictResult", "map_template", "open_map", "predict_map", "predict_tile"]

CLASS_FILL = 255
PROBABILITY_SCALE = 0.01
PROBABILITY_FILL = 255


@dataclass(frozen=True)
class PredictResult:
    """What a prediction run did."""

    url: str
    tiles_written: list[str]
    tiles_done_before: list[str]
    tiles_waiting: list[str] = field(default_factory=list)
    """Source tiles not yet complete in a season the model uses: run again when they are."""
    seconds: float = 0.0


def predict_map(
    source: str,
    model: str | Path | Model,
    output: str,
    *,
    client: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    output_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> PredictResult:
    """Predict classes for every complete tile of ``source`` into the map store ``output``.

    Args:
        source: URL of a composite store.
        model: a model file (see :mod:`cubehub.learn.model`) or a loaded :class:`Model`.
        output: URL of the map store (created, or resumed when made by the same model and
            source).
        client: Dask client to compute on; default None (Dask's current scheduler).
        storage_options, output_options: fsspec options of ``source`` and ``output``,
            without secrets.
        overwrite: replace a map made by another model or source at ``output``.

    Raises:
        InputError: bad model, features the store lacks, or an output made otherwise;
            all before any pixel is read.
    """
    started = time.perf_counter()
    loaded = model if isinstance(model, Model) else load_model(model)
    if len(loaded.classes) >= CLASS_FILL:
        raise InputError(f"the model has {len(loaded.classes)} classes; at most 254 are stored")
    ds = open_composite(source, storage_options)
    features = check_features(loaded.feature_names, ds)
    completion, layout = store_records(source, storage_options)
    identity = {
        "source": redact(source),
        "model_sha256": loaded.sha256,
        "features": [f.name for f in features],
        "classes": [str(c) for c in loaded.classes],
    }
    store = MapStore.open_or_create(
        output,
        map_template(ds, loaded),
        layout,
        identity,
        storage_options=output_options,
        overwrite=overwrite,
    )
    done = store.completed_tiles()
    ready = completion.tiles_complete(sorted({f.season for f in features}), layout.tiles)
    estimator = client.scatter(loaded.estimator, broadcast=True) if client is not None else None
    written, waiting = [], []
    for tile, (y0, y1, x0, x1) in sorted(layout.tiles.items()):
        if tile in done:
            continue
        if tile not in ready:
            waiting.append(tile)
            continue
        region = ds.isel(y=slice(y0, y1), x=slice(x0, x1))
        predicted = predict_tile(region, features, loaded, estimator)
        write = store.write_tile(predicted, tile)
        if client is not None:
            client.compute(write).result()
        else:
            compute(write)
        store.mark_complete(tile)
        written.append(tile)
    return PredictResult(
        url=output,
        tiles_written=written,
        tiles_done_before=sorted(done),
        tiles_waiting=waiting,
        seconds=time.perf_counter() - started,
    )


def map_template(ds: xr.Dataset, model: Model) -> xr.Dataset:
    """The full-grid map (lazy, never computed): coordinates, CRS, encodings, chunks of ``ds``."""
    first = next(v for v in ds.data_vars.values() if set(SPATIAL_DIMS) <= set(v.dims))
    sizes = dict(zip(first.dims, first.data.chunks, strict=True))
    cy, cx = (sizes[d][0] for d in SPATIAL_DIMS)
    n = len(model.classes)
    shape = (ds.sizes["y"], ds.sizes["x"])
    coords = {"y": ds["y"].values, "x": ds["x"].values, "class": _labels(model.classes)}
    out = xr.Dataset(
        {
            "predicted_class": (SPATIAL_DIMS, da.zeros(shape, chunks=(cy, cx), dtype="float32")),
            "probability": (
                ("class", *SPATIAL_DIMS),
                da.zeros((n, *shape), chunks=(n, cy, cx), dtype="float32"),
            ),
        },
        coords=coords,
    )
    out = out.rio.write_crs(ds.rio.crs).rio.write_transform(ds.rio.transform())
    return _encoded(out, model)


def _labels(classes: Sequence[Any]) -> np.ndarray:
    values = np.asarray(classes)
    return values.astype(object) if values.dtype.kind in "OUS" else values


def _encoded(ds: xr.Dataset, model: Model) -> xr.Dataset:
    n = len(model.classes)
    chunks = {name: tuple(c[0] for c in var.chunks or ()) for name, var in ds.data_vars.items()}
    meanings = " ".join(str(c).replace(" ", "_") for c in model.classes)
    ds["predicted_class"].attrs.update(
        long_name="predicted class (code into the class coordinate)",
        flag_values=list(range(n)),
        flag_meanings=meanings,
    )
    ds["probability"].attrs.update(long_name="probability of each class", units="1")
    ds["predicted_class"].encoding = {
        "dtype": "uint8",
        "_FillValue": CLASS_FILL,
        "chunks": chunks["predicted_class"],
        "grid_mapping": "spatial_ref",
    }
    ds["probability"].encoding = {
        "dtype": "uint8",
        "scale_factor": PROBABILITY_SCALE,
        "_FillValue": PROBABILITY_FILL,
        "chunks": chunks["probability"],
        "grid_mapping": "spatial_ref",
    }
    ds.attrs.update(
        title="cubehub class map",
        cubehub_model=model.path.name,
        cubehub_model_sha256=model.sha256,
        Conventions="CF-1.8",
    )
    return ds


def predict_tile(
    region: xr.Dataset, features: Sequence[Feature], model: Model, estimator: Any = None
) -> xr.Dataset:
    """The map of one tile (lazy): one task per chunk reads all features and predicts.

    ``estimator``: the model as the cluster holds it (a scattered future), default the
    model's own estimator (embedded in the graph once).
    """
    stack = feature_array(region, features).chunk(feature=-1).data
    n = len(model.classes)
    held = estimator if estimator is not None else delayed(model.estimator, pure=True)
    out = da.map_blocks(
        _predict_block,
        stack,
        held,
        [f.name for f in features],
        n,
        chunks=((1 + n,), *stack.chunks[1:]),
        dtype=np.float32,
        meta=np.array((), dtype=np.float32),
    )
    coords = {"y": region["y"].values, "x": region["x"].values, "class": _labels(model.classes)}
    tile = xr.Dataset(
        {
            "predicted_class": (SPATIAL_DIMS, out[0]),
            "probability": (("class", *SPATIAL_DIMS), out[1:]),
        },
        coords=coords,
    )
    return _encoded(tile, model)


def _predict_block(block: np.ndarray, estimator: Any, names: list[str], n: int) -> np.ndarray:
    """(feature, y, x) float32 -> (1 + classes, y, x): the class code, then probabilities."""
    _, h, w = block.shape
    rows = block.reshape(block.shape[0], -1).T
    ok = np.isfinite(rows).all(axis=1)
    out = np.full((1 + n, h * w), np.nan, dtype=np.float32)
    if ok.any():
        # A DataFrame with the training columns: estimators check the names they were fit on.
        proba = np.asarray(estimator.predict_proba(pd.DataFrame(rows[ok], columns=names)))
        out[0, ok] = proba.argmax(axis=1)
        out[1:, ok] = proba.T
    return out.reshape(1 + n, h, w)


def open_map(url: str, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """A map store, lazily, decoded; pixels of tiles not recorded complete are NaN."""
    return MapStore(url, storage_options).open()
