"""``lab report RUN_ID... -o report.html``: one self-contained HTML file of stored runs.

The lead registers it with ``cli.add_command(report)`` in :mod:`lab.cli`. The page
(``lab.report.html``) holds the comparison table, charts over time of throughput,
latency, target CPU and RSS, and the sweep curves and fits of any sweep a run belongs
to; it opens with no network. The database is opened read-only. Bad input (a missing
database, an unknown run id, an output path that cannot be written) is one line on
stderr and exit code 2 (:attr:`lab.errors.ExitCode.BAD_INPUT`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click

from lab.errors import ExitCode
from lab.ids import RUN_ID


def _bad_input(message: str) -> NoReturn:
    """Print the one-line error on stderr and exit with code 2.

    ``sys.exit`` rather than ``click.exceptions.Exit``: ``lab.cli.main`` runs click with
    ``standalone_mode=False``, where an ``Exit`` is returned as a value, not an exit status.
    """
    click.echo(message, err=True)
    sys.exit(ExitCode.BAD_INPUT)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory,
    so a reader never sees half a report and a failed write leaves no file behind.

    Raises:
        OSError: the directory does not exist or cannot be written.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(db_path: str, run_ids: Sequence[int]) -> str:
    """The report of ``run_ids`` from the database at ``db_path``, as HTML text.

    Exits with code 2 and one line on stderr when the database cannot be read or a run id
    is unknown (``results.db: no run with id 9``).
    """
    from lab.report.html import gather, render_report
    from lab.store import StoreError, open_store

    try:
        store = open_store(db_path, readonly=True)
    except StoreError as exc:
        _bad_input(str(exc))
    with store:
        try:
            data = gather(store, list(run_ids), source=db_path)
        except KeyError as exc:
            _bad_input(f"{db_path}: {exc.args[0]}")
        except StoreError as exc:  # a damaged page met while reading
            _bad_input(str(exc))
    return render_report(data)


@click.command()
@click.argument("run_ids", type=RUN_ID, nargs=-1, required=True)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, allow_dash=True),
              default="report.html", show_default=True,
              help="The HTML file to write ('-' for stdout); replaced if it exists.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), envvar="LAB_DB",
              default="results.db", show_default=True, show_envvar=True,
              help="The results database (SQLite).")
def report(run_ids: Sequence[int], output: str, db_path: str) -> None:
    """Write one self-contained HTML report of stored runs (opens with no network).

    The report holds the comparison table (deltas against the first run), charts over
    time of throughput, latency, target CPU and RSS with one line per run, and the sweep
    curves and fits of any sweep a run belongs to. A failed or aborted run is shown with
    its status and reason.
    """
    html = build_report(db_path, run_ids)
    if output == "-":
        sys.stdout.write(html)
        sys.stdout.flush()
        return
    path = Path(output)
    if not path.parent.is_dir():
        _bad_input(f"{output}: directory {str(path.parent)!r} does not exist")
    try:
        _write_atomically(path, html)
    except OSError as exc:
        _bad_input(f"{output}: cannot write the report: {exc.strerror or exc}")
    if sys.stderr.isatty():
        size_kib = len(html.encode("utf-8")) / 1024
        click.echo(f"wrote {output} ({len(run_ids)} run{'s' if len(run_ids) != 1 else ''}, "
                   f"{size_kib:,.0f} KiB)", err=True)


if __name__ == "__main__":  # pragma: no cover - a way to run it before it is registered
    from lab.cli import cli, main

    if "report" not in cli.commands:
        cli.add_command(report)
    main()
