"""``lab report RUN_ID... -o report.html``: one self-contained HTML file of stored runs.

The page (``lab.report.html``) holds the comparison table, charts over time of throughput,
latency, target CPU and RSS, and the sweep curves and fits of any sweep a run belongs
to; it opens with no network. The database is opened read-only. Bad input (a missing
database, an unknown run id, an output path that cannot be written) is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import click

from lab.cli.common import db_option, fail, lab_command, open_readonly
from lab.errors import UnknownRunError
from lab.ids import RUN_ID


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

    Raises:
        StoreError: the database cannot be read (a damaged page met while reading too).
        InputError: a run id is unknown (``results.db: no run with id 9``).
    """
    from lab.report.html import gather, render_report

    with open_readonly(db_path) as store:
        try:
            data = gather(store, list(run_ids), source=db_path)
        except UnknownRunError as exc:
            fail(f"{db_path}: {exc}")
    return render_report(data)


@lab_command()
@click.argument("run_ids", type=RUN_ID, nargs=-1, required=True)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, allow_dash=True),
              default="report.html", show_default=True,
              help="The HTML file to write ('-' for stdout); replaced if it exists.")
@db_option
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
        fail(f"{output}: directory {str(path.parent)!r} does not exist")
    try:
        _write_atomically(path, html)
    except OSError as exc:
        fail(f"{output}: cannot write the report: {exc.strerror or exc}")
    if sys.stderr.isatty():
        size_kib = len(html.encode("utf-8")) / 1024
        click.echo(f"wrote {output} ({len(run_ids)} run{'s' if len(run_ids) != 1 else ''}, "
                   f"{size_kib:,.0f} KiB)", err=True)
