"""What every ``lab`` command shares: the ``--db`` and ``--format`` options, the one way to
open the results database, the one bad-input path, and stdout (its console, and a reader
that goes away early).

Every command is a ``LabCommand``: a ``LabError`` raised anywhere under it (bad input, a
database that cannot be used, an unknown run) ends it as its one line on stderr and its
exit code (``lab.errors``), here and nowhere else, whether the command runs under
``lab.cli.main`` or on its own (``CliRunner().invoke(command)``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console

from lab.errors import ExitCode, InputError, LabError

if TYPE_CHECKING:
    from lab.store import Store

FORMATS = click.Choice(["table", "json"])
"""``--format`` of the commands that show stored things."""
RUN_FORMATS = click.Choice(["table", "json", "csv", "markdown", "junit"])
"""``--format`` of the commands that print runs side by side (``lab run``, ``lab compare``)."""


def fail(message: str) -> NoReturn:
    """End the command as bad input: ``message`` (one line) on stderr, exit code 2."""
    raise InputError(message)


def exit_on(error: LabError) -> NoReturn:
    """The one place a ``LabError`` becomes what the user sees: its line on stderr, its exit
    code."""
    click.echo(str(error), err=True)
    sys.exit(error.exit_code)


class StdoutClosed(SystemExit):
    """stdout's reader went away; exits 0 unless a command catches it to go on to its own
    exit code (``lab run`` does: the runs decide it)."""


def stdout_to_devnull() -> None:
    """Send what is still to be written to stdout nowhere (its reader is gone), so neither
    the next write nor the flush at exit fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class LabCommand(click.Command):
    """A ``lab`` command: a ``LabError`` ends it as one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabError as exc:
            exit_on(exc)


class LabGroup(click.Group):
    """The ``lab`` group: its commands are ``LabCommand``s, and a sub-command's stdout closed
    by its reader (``lab runs | head``) ends it with exit 0. click itself turns that error
    into exit 1, which the exit codes document as "a run failed"."""

    command_class = LabCommand

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            stdout_to_devnull()
            raise StdoutClosed(ExitCode.OK) from None
        except LabError as exc:
            exit_on(exc)


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        # `lab show 1 | head` closed the pipe: that is the reader's choice, not a failed
        # run (rich's default exits 1, which exit code 1 documents as "a run failed").
        stdout_to_devnull()
        raise StdoutClosed(ExitCode.OK)


def stdout_console() -> Console:
    """A rich console on stdout; piped output gets a wide, colourless table rather than
    rich's 80-column default."""
    return _StdoutConsole(file=sys.stdout, width=None if sys.stdout.isatty() else 160)


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--db PATH`` (or ``$LAB_DB``): the results database."""
    return click.option(
        "--db", "db_path", type=click.Path(dir_okay=False), envvar="LAB_DB",
        default="results.db", show_default=True, show_envvar=True,
        help="The results database (SQLite).",
    )(f)


def format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--format table|json``."""
    return click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
                        help="Output format on stdout.")(f)


def run_format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--format table|json|csv|markdown|junit``."""
    return click.option("--format", "fmt", type=RUN_FORMATS, default="table", show_default=True,
                        help="Output format on stdout (markdown: for a pull-request comment; "
                             "junit: one test case per threshold).")(f)


def open_writable(db_path: str) -> Store:
    """Open (or create) the results database for writing (runs of killed labs are marked
    failed with their figures: ``lab.results``), and check that it is sound:
    a file that cannot be written, or is damaged, fails here, before any process starts
    (a ``StoreError``: one line, exit 2)."""
    from lab.results import open_results

    return open_results(db_path, check=True)


def open_readonly(db_path: str) -> Store:
    """Open the results database for reading; nothing is created or changed (a missing,
    foreign or damaged file is a ``StoreError``: one line, exit 2)."""
    from lab.results import open_results

    return open_results(db_path, readonly=True)


def check_before_ui(db_path: str) -> None:
    """Refuse, before the TUI starts (``lab tui``, ``lab web``), a results database it could
    not use, as ``lab run`` does before a run: a directory, a file that is not a results
    database, one written by a newer lab, or a damaged one (every page read; nothing is
    written to it, nor made beside it). A missing or empty file is fine: the first run
    creates it.

    Raises:
        StoreError: that problem, one line naming the file (exit 2).
    """
    from pathlib import Path

    from lab.results import open_results

    path = Path(db_path)
    if not db_path or path.is_dir() or (path.is_file() and path.stat().st_size > 0):
        open_results(db_path, readonly=True, check=True).close()


def lab_command(name: str | None = None, **attrs: Any) -> Callable[[Callable[..., Any]], LabCommand]:
    """``click.command`` for a ``lab`` command: a ``LabCommand``."""
    return click.command(name, cls=LabCommand, **attrs)
