"""``lab export RUN_ID... --format csv|json``: the per-second series, resource samples and
target gauges of stored runs, for spreadsheets, notebooks and other tools.

The database is opened read-only. Data goes to stdout (or ``-o FILE``) and nothing else
does; a missing database, an unknown run id or an unwritable output file is one line on
stderr and exit code 2, with nothing written.

CSV holds one table, chosen with ``--what``: ``series`` (default; one row per run per
interval), ``resources`` (one row per psutil reading), ``targets`` (one row per target
gauge reading), or for runs behind a balancer ``replica_intervals`` (one row per
interval per replica), ``replica_counts`` (one row per interval) or ``autoscale_events``
(one row per decision). JSON holds all of them per run. Columns and units:
:mod:`lab.report.formats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click

from lab.cli.common import db_option, fail, lab_command, open_readonly
from lab.errors import UnknownRunError
from lab.ids import RUN_ID
from lab.report.export import WHAT, render_export


@lab_command()
@click.argument("run_ids", type=RUN_ID, nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="csv: one table (see --what); json: series, resources and target gauges per run.")
@click.option("--what", type=click.Choice(WHAT), default=None,
              help="CSV only: series (one row per run per second, the default), resources "
                   "(psutil readings per role), targets (the target's gauges), or for runs "
                   "behind a balancer replica_intervals (each replica's requests, errors, "
                   "p50/p99 per second), replica_counts (desired and ready per second) or "
                   "autoscale_events (the autoscaler's decisions).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="Write to FILE instead of stdout.")
@db_option
def export(run_ids: Sequence[int], fmt: str, what: str | None, output: str | None, db_path: str) -> None:
    """Export the per-second series and resource samples of stored runs (CSV or JSON)."""
    if what is not None and fmt != "csv":
        _bad_input(f"--what {what}: applies to --format csv only (JSON holds series, resources "
                   f"and target gauges together)")
    with open_readonly(db_path) as store:
        try:
            text = render_export(store, run_ids, fmt, what or "series")
        except UnknownRunError as exc:
            _bad_input(f"{db_path}: {exc}")
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        _bad_input(f"{output}: cannot write: {exc.strerror or exc}")


def _bad_input(message: str) -> NoReturn:
    """Bad input as one line, whatever line breaks ``message`` holds."""
    fail(" ".join(message.split()))
