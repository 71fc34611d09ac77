"""The command line explains itself and its errors.

Every command, found by walking ``cubehub`` and its groups (so commands added later are
covered too), has a description and an example in ``--help``; every option says what it is
for. Errors print one line without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from cubehub.cli import main
from cubehub.errors import ExitCode, InputError


def _walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(main))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_finds_the_commands() -> None:
    paths = [" ".join(p) for p, _ in COMMANDS]
    assert "" in paths and "demo" in paths
    assert len(paths) >= 3


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "cubehub" for p, _ in COMMANDS]
)
def test_help_has_a_description_and_an_example(
    path: tuple[str, ...], command: click.Command
) -> None:
    text = _help(path)
    summary = (command.help or "").strip().splitlines()
    assert summary and len(summary[0]) > 15, f"`cubehub {' '.join(path)}` has no description"
    assert " ".join(summary[0].split()) in " ".join(text.split())  # click re-wraps long lines
    assert "Example" in text, f"`cubehub {' '.join(path)} --help` shows no example"
    example = text.split("Example", 1)[1]
    usage = " ".join(("cubehub", *path))
    assert usage in example, f"the example of `{usage}` does not show `{usage}` itself"


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "cubehub" for p, _ in COMMANDS]
)
def test_every_option_says_what_it_is_for(path: tuple[str, ...], command: click.Command) -> None:
    undocumented = [
        param.name
        for param in command.params
        if isinstance(param, click.Option)
        and not param.hidden
        and not (param.help or "").strip()
        and param.name not in ("help", "version")
    ]
    assert not undocumented, f"`cubehub {' '.join(path)}` options without help: {undocumented}"


def test_the_installed_entry_point_answers_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cubehub", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert path[0] in proc.stdout


def test_python_m_cubehub_imported_by_a_worker_process_runs_nothing() -> None:
    # multiprocessing's spawn imports the main module again as __mp_main__ in each local
    # worker: an unguarded ``python -m cubehub`` would run the command once per worker.
    code = "import runpy; runpy.run_module('cubehub', run_name='__mp_main__'); print('imported')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "imported\n", proc.stdout + proc.stderr


# --- errors -----------------------------------------------------------------------------------


@pytest.fixture
def failing_command() -> Iterator[str]:
    """A command, registered on the real group for one test, that fails as it is told."""

    @click.command("fail-for-test")
    @click.argument("kind")
    def fail(kind: str) -> None:
        """Fail on purpose (test only)."""
        if kind == "input":
            raise InputError("band [red] is missing; add it to --bands")
        raise RuntimeError("something inside broke")

    main.add_command(fail)
    try:
        yield "fail-for-test"
    finally:
        main.commands.pop("fail-for-test")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_cubehub_error_is_one_line_with_its_exit_code(failing_command: str) -> None:
    result = CliRunner().invoke(main, [failing_command, "input"])
    assert result.exit_code == ExitCode.BAD_INPUT
    # The message's brackets are text, not console markup.
    assert _lines(result.stderr) == ["error: band [red] is missing; add it to --bands"]


def test_an_unexpected_error_is_one_line_and_says_how_to_see_more(failing_command: str) -> None:
    result = CliRunner().invoke(main, [failing_command, "other"])
    assert result.exit_code == ExitCode.INTERNAL
    lines = _lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unexpected RuntimeError: something inside broke")
    assert f"cubehub --debug {failing_command}" in lines[0]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(failing_command: str) -> None:
    result = CliRunner().invoke(main, ["--debug", failing_command, "other"])
    assert result.exit_code == ExitCode.INTERNAL
    assert "Traceback" in result.stderr and "something inside broke" in result.stderr
    assert "rerun" not in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["no-such-command"], ("No such command", "no-such-command")),
        (["demo", "--no-such-option"], ("No such option", "--no-such-option")),
        (["demo", "--size", "many"], ("'many' is not a valid integer",)),
    ],
)
def test_usage_errors_are_clicks_own_message(args: list[str], words: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    error = next(line for line in result.stderr.splitlines() if line.startswith("Error:"))
    assert all(w in error for w in words), result.stderr
    assert "--help" in result.stderr and "Traceback" not in result.output
