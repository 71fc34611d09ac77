"""The ``cubehub`` command: parses options, calls the library, maps errors to exit codes.

Commands live in modules of this package (one per area), each exporting ``COMMANDS``.
"""

from __future__ import annotations

import signal
import traceback

import click
from rich.console import Console
from rich.markup import escape

from cubehub.errors import CubehubError, ExitCode
from cubehub.interrupts import handle_interrupts

console = Console(stderr=True)


class _Group(click.Group):
    """Turns every error into one line and its exit code; tracebacks only with --debug.

    cubehub's own errors print their message (what was wrong, how to fix it); click's usage
    errors keep click's message and exit code 2; anything else is unexpected and prints its
    type and message plus how to get the traceback.
    """

    def invoke(self, ctx: click.Context) -> object:
        debug = bool(ctx.params.get("debug"))
        try:
            # SIGTERM too: a batch job stopped by Kubernetes keeps its completed tiles.
            with handle_interrupts(signal.SIGTERM):
                return super().invoke(ctx)
        except CubehubError as exc:
            if debug:
                traceback.print_exc()
            _print_error(str(exc))
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
            hint = "" if debug else f"; rerun as `{command} ...` to see the traceback, and report it if it persists"
            _print_error(f"unexpected {type(exc).__name__}: {exc}{hint}")
            ctx.exit(int(ExitCode.INTERNAL))
        return None


def _print_error(message: str) -> None:
    """One line on stderr; the message is escaped, so ``[red]`` in it is text, not markup."""
    flat = " ".join(message.split())
    console.print(f"[bold red]error:[/] {escape(flat)}", highlight=False, soft_wrap=True)


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
    from cubehub.cli import demo, jobs, preview, store

    for module in (demo, jobs, store, preview):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
