"""The command line: ``lab run``, ``lab runs``, ``lab show``, ``lab compare``, ``lab sweep``,
``lab fit``, ``lab export``, ``lab report``, ``lab doctor``, ``lab tui``, ``lab web``.

Data goes to stdout, diagnostics and progress to stderr. Every input error is one line on
stderr and exit code 2 (``lab.errors``). Each command is a thin call into the library, in
a module of its own (``run``, ``runs`` for runs/show/compare, ``sweep``, ``fit``,
``export``, ``report``, ``doctor``, ``ui`` for tui/web); ``common`` holds what they share
(the ``--db`` option, opening the results database, the bad-input path, stdout) and
``output`` how runs and sweeps are printed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

import click

from lab import __version__
from lab.cli.common import LabGroup, exit_on, stdout_to_devnull
from lab.cli.doctor import doctor
from lab.cli.export import export
from lab.cli.fit import fit
from lab.cli.report import report
from lab.cli.run import run
from lab.cli.runs import compare, runs_cmd, show
from lab.cli.sweep import sweep
from lab.cli.ui import tui, web
from lab.errors import ExitCode, LabError

__all__ = ["cli", "main"]


@click.group(cls=LabGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lab")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="The results database for the TUI, or for any sub-command (default: "
                   "$LAB_DB or results.db).")
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False), default=None,
              help="Where the TUI lists experiments from (default: experiments).")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, experiments_dir: str | None) -> None:
    """Scalability Lab: run experiments against local web services and compare the runs.

    Without a sub-command, opens the terminal UI (same as `lab tui`).
    """
    if db_path is not None:
        # Sub-commands read --db from LAB_DB when not given their own.
        os.environ["LAB_DB"] = db_path
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui, db_path=db_path or os.environ.get("LAB_DB", "results.db"),
                   experiments_dir=experiments_dir or "experiments")


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: subprocess.run ends its child first


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``lab`` console script."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="lab",
                 standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("lab: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "lab"
        click.echo(f"{cmd}: {exc.format_message()} (see '{cmd} --help')", err=True)
        sys.exit(ExitCode.BAD_INPUT)
    except LabError as exc:  # raised outside a command (its own are ended by LabCommand)
        exit_on(exc)
    except KeyboardInterrupt:
        click.echo("lab: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head); nothing more to say.
        stdout_to_devnull()
        sys.exit(ExitCode.OK)


for _command in (tui, web, run, runs_cmd, show, compare, doctor, sweep, fit, export, report):
    cli.add_command(_command)
