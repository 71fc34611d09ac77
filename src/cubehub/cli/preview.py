"""``cubehub preview``: PNG quicklooks of any composite store."""

from __future__ import annotations

import re
from pathlib import Path

import click


def png_name(url: str, percentile: float) -> str:
    """File name of a preview: the store's last path part without ``.zarr``, then ``-p50.png``."""
    stem = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr") or "composite"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
    return f"{stem}-p{percentile:g}.png"


@click.command()
@click.argument("url")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the PNG files (created).",
)
@click.option(
    "--index",
    "-i",
    "indices",
    multiple=True,
    help="Index row: a stored index (NDVI) or any spectral index computable from the "
    "stored bands (NDWI, EVI, NBR, ...). Repeat for more. Default: the stored indices.",
)
@click.option(
    "--season",
    "-s",
    "seasons",
    multiple=True,
    help="Season label to show, e.g. 2022-summer; repeat for more. Default: all.",
)
@click.option(
    "--percentile",
    "-p",
    "percentiles",
    type=float,
    multiple=True,
    help="Percentile to show, one PNG each; repeat for more. Default: 50.",
)
@click.option(
    "--rgb/--no-rgb", default=True, show_default=True, help="Include the true-colour row."
)
@click.option("--counts", is_flag=True, help="Add a row of clear-observation counts per pixel.")
@click.option(
    "--fill-marks/--no-fill-marks",
    default=True,
    show_default=True,
    help="On a gap-filled store: mark filled pixels in magenta and add a fill-source row.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=16),
    default=800,
    show_default=True,
    help="Largest image edge drawn; larger stores are subsampled.",
)
def preview(
    url: str,
    output: Path,
    indices: tuple[str, ...],
    seasons: tuple[str, ...],
    percentiles: tuple[float, ...],
    rgb: bool,
    counts: bool,
    fill_marks: bool,
    max_pixels: int,
) -> None:
    """Write PNG quicklooks of a composite store (a path or s3://... URL).

    One PNG per percentile: a column per season, titled with its dates, and rows for true
    colour (red, green, blue), each index (with a colour bar) and, with --counts, the
    number of clear observations. Object-store credentials come from the environment
    (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), as for every cubehub command.

    \b
    Example:
      cubehub preview demo-output/composite.zarr --index NDVI --index NDWI -p 25 -p 75 --counts
    """
    from cubehub.cli.console import console
    from cubehub.output.open import open_composite
    from cubehub.output.quicklook import check_request, stored_indices, write_quicklook

    ds = open_composite(url)
    rows = list(indices) if indices else stored_indices(ds)
    wanted = percentiles or (50.0,)
    colours = ("red", "green", "blue") if rgb else None
    # Every PNG's request is checked before the first one reads pixels.
    check_request(
        ds, percentiles=wanted, rgb=colours, index=rows, seasons=seasons or None, counts=counts
    )
    if "complete" in ds.coords and not bool(ds["complete"].all()):
        share = 100 * (1 - float(ds["complete"].mean()))
        console.print(
            f"note: {share:.0f} % of the pixels are in tiles not yet written; they show blank"
        )
    for q in wanted:
        path = write_quicklook(
            ds,
            output / png_name(url, q),
            percentile=q,
            rgb=colours,
            index=rows,
            seasons=seasons or None,
            counts=counts,
            max_pixels=max_pixels,
            fill_marks=fill_marks,
        )
        click.echo(str(path))


COMMANDS = [preview]
