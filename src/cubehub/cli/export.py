"""``cubehub export``: a composite store as ODSE-style COGs with a STAC Collection."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from cubehub.cli.store import storage_flags, storage_options_of
from cubehub.errors import CubehubWarning


@click.command("export")
@click.argument("store")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cog"]),
    default="cog",
    show_default=True,
    help="Output format: cog, one Cloud Optimized GeoTIFF per variable x percentile x season.",
)
@click.option(
    "--product",
    help="Product field of the file names, e.g. landsat.glad.ard (default: the store's source "
    "STAC collection, e.g. landsat.c2.l2).",
)
@click.option(
    "--area",
    help="Area field of the file names, e.g. eumap (default: the store's name without .zarr).",
)
@click.option(
    "--product-version",
    help="Version field of the file names, e.g. v1.1 (default: v + major.minor of the cubehub "
    "that wrote the store).",
)
@click.option("--overwrite", is_flag=True, help="Replace files of the same names in DIR.")
@click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Export a store whose tiles are not all complete, those tiles as nodata (with a "
    "warning); default: refuse it.",
)
@click.option(
    "--blocksize",
    type=int,
    default=512,
    show_default=True,
    help="Internal tile edge of the COGs, px (a multiple of 16).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@storage_flags
def export(
    store: str,
    folder: Path,
    fmt: str,
    product: str | None,
    area: str | None,
    product_version: str | None,
    overwrite: bool,
    allow_incomplete: bool,
    blocksize: int,
    quiet: bool,
    endpoint_url: str | None,
    profile: str | None,
    anonymous: bool,
) -> None:
    """Export a composite store as COGs named the ODSE way, with a STAC Collection.

    One Cloud Optimized GeoTIFF per variable x percentile x season (counts and fill sources:
    per variable x season), named with ODSE's fields in ODSE's order, e.g.
    lcv_red_landsat.c2.l2_p50_30m_0..0cm_2022.06.25..2022.09.12_graz_epsg3035_v0.1.tif:
    internal tiles, overviews, the store's integers with their nodata, scale/offset and
    unit, and tags for the season and the provenance. DIR/collection.json lists them, one
    STAC Item per season. Everything is checked before the first file is written; existing
    files are never replaced without --overwrite. STORE is a Zarr store or an Icechunk
    repository, a path or s3://...; credentials come from the environment.

    \b
    Example:
      cubehub export demo-output/composite.zarr --format cog demo-output/cogs
      cubehub export s3://composites/graz-2022.zarr cogs --area graz --product-version v1.0
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cubehub.cli.console import console, print_warning
    from cubehub.output.export import export_cogs

    del fmt  # one format so far; click refuses any other before this runs
    columns = (
        TextColumn("export"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )

    def show(message: Warning | str, category: type[Warning], *args: object, **kw: object) -> None:
        print_warning(str(message))  # at once, above the bar: before the first file is written

    with (
        warnings.catch_warnings(),
        Progress(*columns, console=console, disable=quiet, transient=True) as bar,
    ):
        warnings.simplefilter("always", CubehubWarning)
        warnings.showwarning = show
        task = bar.add_task("", total=None)
        result = export_cogs(
            store,
            folder,
            storage_options=storage_options_of(store, endpoint_url, profile, anonymous),
            product=product,
            area=area,
            version=product_version,
            overwrite=overwrite,
            allow_incomplete=allow_incomplete,
            blocksize=blocksize,
            progress=lambda done, total, name: bar.update(
                task, completed=done, total=total, description=name
            ),
        )
    mb = result.bytes_written / 1e6
    click.echo(f"COGs         {len(result.files)} in {result.folder}")
    click.echo(f"STAC         {result.collection}")
    click.echo(f"Written      {mb:.1f} MB in {result.seconds:.1f} s")


COMMANDS = [export]
