"""``cubehub serve``: a web map, XYZ/WMTS tiles and TileJSON of composite stores."""

from __future__ import annotations

import click


@click.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="TCP port (0: any free one).",
)
@click.option(
    "--public-url",
    help="The server's URL as clients reach it, for absolute URLs in TileJSON and WMTS "
    "(default: from the request's Host and X-Forwarded-* headers).",
)
def serve(stores: tuple[str, ...], host: str, port: int, public_url: str | None) -> None:
    """Serve STORES (paths or s3://... URLs) as a web map with XYZ and WMTS tiles.

    Opens a page to pick variable, season and percentile, with a legend (units, season
    dates) and a pixel's seasonal profile on click. Tiles of a store still being written
    are drawn only where complete, and fill in as tiles complete. GIS clients: WMTS at
    <url><store>/wmts/WMTSCapabilities.xml, TileJSON at
    <url><store>/layers/<layer>/tilejson.json. All page URLs are relative, so it works
    behind JupyterHub at /user/<name>/proxy/<port>/. Ctrl-C stops it.

    \b
    Example:
      cubehub serve demo-output/composite.zarr --port 8000
    """
    from cubehub.cli.console import console
    from cubehub.errors import InputError

    try:
        from cubehub.maps.server import MapServer, open_stores
    except ModuleNotFoundError as exc:
        raise InputError(f"cubehub serve needs {exc.name}: pip install 'cubehub[maps]'") from None

    server = MapServer(open_stores(stores), host, port, public_url=public_url)
    console.print(f"serving {', '.join(server.stores)} at {server.url}  (Ctrl-C stops)")
    for name in server.stores:
        console.print(f"  WMTS  {server.url}{name}/wmts/WMTSCapabilities.xml")
    try:
        server.serve_forever()
    finally:
        server.server_close()


COMMANDS = [serve]
