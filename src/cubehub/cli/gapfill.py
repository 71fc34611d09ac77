"""``cubehub gapfill``: fill the gaps of a composite store into a cloud-free store."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import click

from cubehub.cli.logs import long_command_logging
from cubehub.cli.store import storage_flags, storage_options_of
from cubehub.clusters.spec import BACKENDS

if TYPE_CHECKING:
    from cubehub.clusters.spec import Backend
    from cubehub.compute.gapfill import FillRule


@click.command("gapfill")
@click.argument("store")
@click.option(
    "--output",
    "-o",
    help="The filled store (default: STORE with -filled before .zarr, e.g. graz-filled.zarr).",
)
@click.option(
    "--order",
    default="same_season,neighbour_seasons,annual",
    show_default=True,
    help="Rules in the order they are tried, comma-separated (eumap's TMWM order by default).",
)
@click.option(
    "--same-season-years",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Fill from the same season of years y±1 .. y±this (4: eumap's 9-year window).",
)
@click.option(
    "--neighbour-seasons",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Fill from seasons s±1 .. s±this of the same year, round the year.",
)
@click.option(
    "--empty-seasons",
    type=click.Choice(["fill", "nan"]),
    default="fill",
    show_default=True,
    help="Seasons without any acquisition: fill them too, or leave them NaN.",
)
@click.option("--overwrite", is_flag=True, help="Replace a filled store made with other settings.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    help="Where to run: local, address or kubernetes (default: settings).",
)
@click.option("--address", help="Scheduler address for --backend address.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, only log lines.")
@storage_flags
@click.pass_context
def gapfill(
    ctx: click.Context,
    store: str,
    output: str | None,
    order: str,
    same_season_years: int,
    neighbour_seasons: int,
    empty_seasons: str,
    overwrite: bool,
    backend: str | None,
    address: str | None,
    quiet: bool,
    endpoint_url: str | None,
    profile: str | None,
    anonymous: bool,
) -> None:
    """Fill the gaps of a composite store into a second, cloud-free store; resumable.

    Every missing pixel of every band, index and percentile takes the median of the same
    season in the nearest years (y±1, then y±2 ...), else of the neighbouring seasons of
    its year, else of its whole year (eumap's temporal moving window median). Each
    variable gets a <variable>_fill_source layer: 0 observed, else the code of the rule
    (its flag_meanings attribute says which). The composite store is not changed. Run it
    again after appending a year: the new seasons are filled, and the seasons that can
    now fill from them are filled again. A job file does this itself with gap_fill: true.

    \b
    Example:
      cubehub gapfill graz.zarr
      cubehub gapfill s3://composites/graz.zarr -o s3://composites/graz-cloudfree.zarr --same-season-years 2
    """
    from cubehub.clusters.backends import cluster
    from cubehub.compute.gapfill import GapFillRules
    from cubehub.fill_job import fill_shares, fill_store
    from cubehub.gapfill import filled_url

    long_command_logging(ctx)
    rules = GapFillRules(  # checks the names
        cast("tuple[FillRule, ...]", tuple(r.strip() for r in order.split(",") if r.strip())),
        same_season_years,
        neighbour_seasons,
    )
    target = output or filled_url(store)
    options = storage_options_of(store, endpoint_url, profile, anonymous)
    with cluster(cast("Backend | None", backend), address=address) as client:
        result = fill_store(
            store,
            target,
            client,
            rules=rules,
            empty_seasons="nan" if empty_seasons == "nan" else "fill",
            storage_options=options,
            overwrite=overwrite,
            show_progress=not quiet,
        )
        shares = fill_shares(target, options)
    click.echo(f"Filled store {result.output}")
    click.echo(
        f"Tiles        {len(result.tiles_written)} filled, {len(result.tiles_skipped)} up to date, "
        f"{len(result.tiles_waiting)} waiting for their composites"
    )
    if result.seasons_refilled:
        click.echo(f"Filled again {', '.join(result.seasons_refilled)}")
    click.echo("Values       " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in shares.items()))
    click.echo(f"Time         {result.seconds:.1f} s")


COMMANDS = [gapfill]
