"""The ``cubehub`` command: parses options, calls the library, maps errors to exit codes.

Commands live in modules of this package (one per area), each exporting ``COMMANDS``.
"""

from __future__ import annotations

import traceback

import click
from rich.console import Console

from cubehub.errors import CubehubError, ExitCode

console = Console(stderr=True)


class _Group(click.Group):
    """Turns every error into one line and its exit code; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> object:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except CubehubError as exc:
            if debug:
                traceback.print_exc()
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            console.print("[bold yellow]interrupted[/]; servers and clusters were stopped")
            ctx.exit(int(ExitCode.INTERRUPTED))
        return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="cubehub")
def main(debug: bool) -> None:
    """cubehub: seasonal percentile composites from STAC to Zarr, on Dask.

    \b
    Example:
      cubehub demo --output demo-output
    """


def _register_commands() -> None:
    """Each command lives in its own module of this package and registers on ``main``."""
    from cubehub.cli import demo

    for module in (demo,):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
