"""``cubehub open`` and ``cubehub info``: look into a composite store."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click


def storage_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options that say where the store is; credentials are never options."""
    command = click.option("--anonymous", is_flag=True, help="Unsigned requests (public buckets).")(
        command
    )
    command = click.option(
        "--profile", default=None, help="Named AWS profile with the S3 credentials."
    )(command)
    command = click.option(
        "--endpoint-url",
        default=None,
        help="S3 endpoint of a non-AWS object store, e.g. http://127.0.0.1:8333 (default: AWS_ENDPOINT_URL or AWS).",
    )(command)
    return command


def storage_options_of(
    url: str, endpoint_url: str | None, profile: str | None, anonymous: bool
) -> dict[str, Any]:
    from cubehub.output.storage import storage_options

    return storage_options(url, endpoint_url=endpoint_url, profile=profile, anonymous=anonymous)


@click.command("open")
@click.argument("url")
@storage_flags
@click.option(
    "--odse", is_flag=True, help="Show the layers with ODSE names (<band>_p50_<start>..<end>)."
)
@click.option(
    "--all-pixels", is_flag=True, help="Do not hide pixels of tiles that are not complete."
)
def open_(
    url: str,
    endpoint_url: str | None,
    profile: str | None,
    anonymous: bool,
    odse: bool,
    all_pixels: bool,
) -> None:
    """Open a composite store lazily and print it as xarray shows it.

    Reads metadata only. Pixels of tiles not yet recorded complete are hidden (NaN), so a
    store still being written never shows fill values as data; the ``complete`` coordinate
    says which pixels are. Credentials come from the environment, never from options.

    \b
    Example:
      cubehub open s3://composites/graz-2022.zarr --endpoint-url http://127.0.0.1:8333
    """
    from cubehub.output.open import open_composite

    options = storage_options_of(url, endpoint_url, profile, anonymous)
    ds = open_composite(
        url, options, complete_only=not all_pixels, layout="odse" if odse else "cube"
    )
    click.echo(ds)
    args = f"{url!r}" + (f", {options!r}" if options else "")
    click.echo(f"\nIn Python:  from cubehub import open_composite; ds = open_composite({args})")


@click.command("info")
@click.argument("url")
@storage_flags
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(
    url: str, endpoint_url: str | None, profile: str | None, anonymous: bool, as_json: bool
) -> None:
    """Summarise a composite store: grid, CRS, variables, seasons, complete tiles, provenance.

    Reads metadata, completion records and the STAC item beside the store; no pixels.
    Exits 0 whether or not every tile is complete; use --json and its "complete" key in
    scripts. Credentials come from the environment, never from options.

    \b
    Example:
      cubehub info demo-output/composite.zarr
      cubehub info s3://composites/graz-2022.zarr --json
    """
    from cubehub.output.info import describe_store, format_store_info

    summary = describe_store(url, storage_options_of(url, endpoint_url, profile, anonymous))
    click.echo(json.dumps(summary.to_dict(), indent=1) if as_json else format_store_info(summary))


COMMANDS = [open_, info]
