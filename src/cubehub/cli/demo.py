"""``cubehub demo``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Directory for the archive, the Zarr store and the quicklook.",
)
@click.option(
    "--collection",
    type=click.Choice(["sentinel-2-l2a", "landsat-c2-l2"]),
    default="sentinel-2-l2a",
    show_default=True,
    help="Which synthetic archive: Sentinel-2 L2A, or Landsat Collection 2 Level-2 "
    "(seven ODSE bands with thermal, Landsat 7/8/9, SLC-off, sidelap).",
)
@click.option(
    "--size",
    type=int,
    default=None,
    help="Archive edge in pixels: 10 m Sentinel-2 (multiple of 32, default 256) or 30 m "
    "Landsat (multiple of 16, default 128); larger for benchmarks.",
)
@click.option(
    "--port",
    type=int,
    default=0,
    show_default=True,
    help="Port of the demo STAC API on 127.0.0.1 (0: any free port).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(output: Path, collection: str, size: int | None, port: int, quiet: bool) -> None:
    """Run the whole pipeline on an embedded synthetic archive (Sentinel-2 or Landsat).

    Builds (or reuses) a year of synthetic Sentinel-2 L2A COGs with clouds, shadows, a
    swath edge, the baseline 04.00 offset and a duplicate acquisition -- or, with
    --collection landsat-c2-l2, Landsat 7/8/9 Collection 2 Level-2 scenes with QA_PIXEL
    clouds, SLC-off stripes, sidelap and surface temperature; serves them over HTTP and a
    STAC API on loopback; computes ODSE quarterly p25/p50/p75 of every band and NDVI on a
    local Dask cluster; writes Zarr and a PNG quicklook.

    \b
    Example:
      cubehub demo --output demo-output --size 512
      cubehub demo --collection landsat-c2-l2
    """
    from cubehub.cli.console import console
    from cubehub.demo import run_demo

    out = run_demo(
        output,
        size=size,
        collection=collection,
        port=port,
        show_progress=not quiet,
        console=console,
    )
    r = out.result
    click.echo(f"Zarr store   {out.store}")
    click.echo(f"Quicklook    {out.quicklook}")
    click.echo(
        f"Items        {r.items_found} found, {r.duplicates_dropped} duplicate(s) dropped, "
        f"{r.observations} observations"
    )
    seasons = ", ".join(f"{s} {v:.1f}" for s, v in r.mean_valid_per_season.items())
    click.echo(f"Clear obs    mean per pixel: {seasons}")
    click.echo(f"Time         {out.seconds:.1f} s (composite {r.seconds:.1f} s)")
    click.echo(
        f"Open it      python -c \"import cubehub; print(cubehub.open_composite('{out.store}'))\""
    )


COMMANDS = [demo]
