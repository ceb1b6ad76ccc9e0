"""``lab export RUN_ID... --format csv|json``: the per-second series, resource samples and
target gauges of stored runs, for spreadsheets, notebooks and other tools.

The lead registers it with ``cli.add_command(export)`` in :mod:`lab.cli`. The database is
opened read-only. Data goes to stdout (or ``-o FILE``) and nothing else does; a missing
database, an unknown run id or an unwritable output file is one line on stderr and exit
code 2 (:attr:`lab.errors.ExitCode.BAD_INPUT`), with nothing written.

CSV holds one table, chosen with ``--what``: ``series`` (default; one row per run per
interval), ``resources`` (one row per psutil reading) or ``targets`` (one row per target
gauge reading). JSON holds all three per run. Columns and units:
:mod:`lab.report.formats`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from lab.errors import ExitCode, StoreError
from lab.ids import RUN_ID

if TYPE_CHECKING:
    from lab.store import Store

WHAT = ("series", "resources", "targets")
"""The tables ``--what`` can pick for CSV."""


def _bad_input(message: str) -> NoReturn:
    """Print the one-line error on stderr and exit with code 2.

    ``sys.exit`` rather than ``click.exceptions.Exit``: ``lab.cli.main`` runs click with
    ``standalone_mode=False``, where an ``Exit`` is returned as a value, not an exit status.
    """
    click.echo(" ".join(message.split()), err=True)
    sys.exit(ExitCode.BAD_INPUT)


def _open_readonly(db_path: str) -> Store:
    """The results database, read-only; a missing, foreign or damaged file is bad input."""
    from lab.store import StoreError, open_store

    try:
        return open_store(db_path, readonly=True)
    except StoreError as exc:
        _bad_input(str(exc))


def render_export(store: Store, run_ids: Sequence[int], fmt: str, what: str = "series") -> str:
    """The export text of some runs.

    Args:
        store: an open results database.
        run_ids: the runs, in output order (repeats dropped).
        fmt: ``csv`` or ``json``.
        what: for CSV, the table: ``series``, ``resources`` or ``targets``.

    Raises:
        KeyError: ``no run with id N``.
    """
    from lab.report import formats

    runs = store.get_runs(list(dict.fromkeys(run_ids)))
    if fmt == "json":
        doc = formats.export_json(
            runs,
            intervals={r.id: store.intervals(r.id) for r in runs},
            resources={r.id: store.resources(r.id) for r in runs},
            samples={r.id: store.target_samples(r.id) for r in runs},
        )
        return formats.export_json_text(doc)
    if what == "resources":
        return formats.resources_csv(runs, {r.id: store.resources(r.id) for r in runs})
    if what == "targets":
        return formats.targets_csv(runs, {r.id: store.target_samples(r.id) for r in runs})
    return formats.series_csv(runs, {r.id: store.intervals(r.id) for r in runs})


@click.command()
@click.argument("run_ids", type=RUN_ID, nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="csv: one table (see --what); json: series, resources and target gauges per run.")
@click.option("--what", type=click.Choice(WHAT), default=None,
              help="CSV only: series (one row per run per second, the default), resources "
                   "(psutil readings per role) or targets (the target's gauges).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="Write to FILE instead of stdout.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), envvar="LAB_DB",
              default="results.db", show_default=True, show_envvar=True,
              help="The results database (SQLite).")
def export(run_ids: Sequence[int], fmt: str, what: str | None, output: str | None, db_path: str) -> None:
    """Export the per-second series and resource samples of stored runs (CSV or JSON)."""
    if what is not None and fmt != "csv":
        _bad_input(f"--what {what}: applies to --format csv only (JSON holds series, resources "
                   f"and target gauges together)")
    store = _open_readonly(db_path)
    try:
        text = render_export(store, run_ids, fmt, what or "series")
    except KeyError as exc:
        _bad_input(f"{db_path}: {exc.args[0]}")
    except StoreError as exc:
        _bad_input(str(exc))
    finally:
        store.close()
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        _bad_input(f"{output}: cannot write: {exc.strerror or exc}")
