"""The ``cubehub`` command: parses options, calls the library, maps errors to exit codes.

Commands live in modules of this package (one per area), each exporting ``COMMANDS``.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback

import click

from cubehub.cli.console import console, print_error
from cubehub.cli.logs import configure_logging
from cubehub.clusters.interrupts import handle_interrupts
from cubehub.errors import CubehubError, ExitCode


class _Group(click.Group):
    """Turns every error into one line and its exit code; tracebacks only with --debug.

    cubehub's own errors print their message (what was wrong, how to fix it); click's usage
    errors keep click's message and exit code 2; anything else is unexpected and prints its
    type and message plus how to get the traceback.
    """

    def invoke(self, ctx: click.Context) -> object:
        debug = bool(ctx.params.get("debug"))
        configure_logging(debug, logging.WARNING)  # `cubehub run` shows INFO lines too
        try:
            # SIGTERM too: a batch job stopped by Kubernetes keeps its completed tiles.
            with handle_interrupts(signal.SIGTERM):
                return super().invoke(ctx)
        except CubehubError as exc:
            if debug:
                traceback.print_exc()
            else:
                _quiet_leftovers()
            print_error(str(exc))
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            console.print("[bold yellow]interrupted[/]; servers and clusters were stopped")
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click prints these itself (usage errors: exit code 2)
        except Exception as exc:
            if debug:
                traceback.print_exc()
            command = " ".join(["cubehub", "--debug", *filter(None, [ctx.invoked_subcommand])])
            hint = (
                ""
                if debug
                else f"; rerun as `{command} ...` to see the traceback, and report it if it persists"
            )
            print_error(f"unexpected {type(exc).__name__}: {exc}{hint}")
            ctx.exit(int(ExitCode.INTERNAL))
        return None


def _quiet_leftovers() -> None:
    """After a reported error, the I/O it interrupted (s3fs and zarr coroutines) is closed
    as the process exits; Python would print each as "Exception ignored in ..." with a
    traceback that only repeats the error. Logged at debug level instead."""

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        logging.getLogger("cubehub").debug(
            "ignored while exiting: %r in %r", unraisable.exc_value, unraisable.object
        )

    sys.unraisablehook = hook


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
    from cubehub.cli import demo, export, gapfill, jobs, learn, preview, serve, store

    for module in (demo, jobs, gapfill, store, export, preview, learn, serve):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
