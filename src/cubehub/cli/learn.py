"""``cubehub sample`` and ``cubehub predict``: training data from a store, and a class map."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from cubehub.clusters.spec import BACKENDS, Backend
from cubehub.errors import InputError


def _need_learn_extra() -> None:
    """A clear message when the ``learn`` extra (geopandas, scikit-learn, ...) is missing."""
    for module in ("geopandas", "pyogrio", "pyarrow", "sklearn", "skops"):
        try:
            __import__(module)
        except ModuleNotFoundError:
            raise InputError(f"this command needs {module}: pip install 'cubehub[learn]'") from None


_backend = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Dask cluster to compute on: local (default setting), address or kubernetes.",
)
_address = click.option(
    "--address", help="Scheduler address for --backend address, e.g. tcp://10.0.0.5:8786."
)


@click.command()
@click.argument("store")
@click.argument("points", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="GeoParquet file to write (*.parquet).",
)
@click.option(
    "--odse", is_flag=True, help="Name columns the ODSE way (red_p50_2022.06.25..2022.09.12)."
)
@click.option("--layer", help="Layer of a GeoPackage with several.")
@_backend
@_address
def sample(
    store: str,
    points: Path,
    output: Path,
    odse: bool,
    layer: str | None,
    backend: str | None,
    address: str | None,
) -> None:
    """Sample a composite STORE at POINTS (GeoJSON, GeoPackage or GeoParquet, any CRS).

    Writes GeoParquet: the points' own columns and geometry, one column per variable x
    season x percentile (red_2022-summer_p50, or ODSE names with --odse), the clear
    observation counts (valid_count_<season>), and cubehub_status: "ok", "outside grid" or
    "incomplete tile" (such points are kept, with NaN where the store has no value).

    \b
    Example:
      cubehub sample demo-output/composite.zarr plots.gpkg -o samples.parquet
    """
    _need_learn_extra()
    from cubehub.cli.console import console
    from cubehub.clusters.backends import cluster
    from cubehub.learn.points import read_points
    from cubehub.learn.sample import check_samples_path, sample_points, summary, write_samples
    from cubehub.output.open import open_composite

    check_samples_path(output)
    found = read_points(points, layer=layer)
    ds = open_composite(store)
    with cluster(cast(Backend | None, backend), address=address, dashboard=False) as client:
        samples = sample_points(ds, found, naming="odse" if odse else "cube", client=client)
    write_samples(samples, output)
    counts = summary(samples)
    console.print(
        f"{len(samples)} point(s): {counts['ok']} ok, {counts['outside grid']} outside the grid, "
        f"{counts['incomplete tile']} in incomplete tiles"
    )
    click.echo(str(output))


@click.command()
@click.argument("store")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output")
@click.option("--overwrite", is_flag=True, help="Replace a map made by another model or store.")
@_backend
@_address
def predict(
    store: str,
    model: Path,
    output: str,
    overwrite: bool,
    backend: str | None,
    address: str | None,
) -> None:
    """Apply a classifier MODEL (scikit-learn or LightGBM, saved with skops or joblib) to
    a composite STORE, tile by tile, into the Zarr map store OUTPUT; resumable.

    The model's feature names (the columns it was trained on, from cubehub sample) are
    checked against the store before any pixel is read. OUTPUT holds predicted_class and
    probability per class, with a completion record per tile: a rerun skips finished
    tiles and predicts tiles of the source completed since.

    \b
    Example:
      cubehub predict demo-output/composite.zarr landcover.skops landcover.zarr
    """
    _need_learn_extra()
    from cubehub.cli.console import console
    from cubehub.clusters.backends import cluster
    from cubehub.learn.features import check_features
    from cubehub.learn.model import load_model
    from cubehub.learn.predict import predict_map
    from cubehub.output.open import open_composite

    loaded = load_model(model)
    check_features(loaded.feature_names, open_composite(store))  # before starting a cluster
    with cluster(cast(Backend | None, backend), address=address, dashboard=False) as client:
        result = predict_map(store, loaded, output, client=client, overwrite=overwrite)
    console.print(
        f"{len(result.tiles_written)} tile(s) predicted, {len(result.tiles_done_before)} done "
        f"before, {len(result.tiles_waiting)} waiting for the composite, {result.seconds:.1f} s"
    )
    click.echo(output)


COMMANDS = [sample, predict]
