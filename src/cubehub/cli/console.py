"""The command line's one stderr console (progress, hints, errors), shared by its commands."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "print_error", "print_warning"]

console = Console(stderr=True)


def print_error(message: str) -> None:
    """One line on stderr; the message is escaped, so ``[red]`` in it is text, not markup."""
    flat = " ".join(message.split())
    console.print(f"[bold red]error:[/] {escape(flat)}", highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    """One line on stderr, as errors are (stdout keeps only the command's output)."""
    flat = " ".join(message.split())
    console.print(f"[bold yellow]warning:[/] {escape(flat)}", highlight=False, soft_wrap=True)
