"""``lab doctor``: what this machine has for the experiments, what on it changes results,
and the state of the results database (read only, never created)."""

from __future__ import annotations

import json

import click

from lab.cli.common import db_option, format_option, lab_command, stdout_console


@lab_command()
@db_option
@format_option
def doctor(db_path: str, fmt: str) -> None:
    """Check what this machine has for the experiments (redis-server, PostgreSQL, nginx),
    what on it changes results (cores, load, open-file limit, memory), and the results
    database (path, size, schema, runs; read only, never created)."""
    from rich.table import Table

    from lab.doctor import checks

    found = checks(db_path)
    if fmt == "json":
        click.echo(json.dumps({"checks": [c.as_dict() for c in found]}, indent=2))
        return
    styles = {"ok": "green", "warn": "yellow", "missing": "red", "info": "dim"}
    table = Table(title="lab doctor", show_edge=False, title_style="bold")
    for column in ("check", "", "value", "note"):
        table.add_column(column, overflow="fold")
    for c in found:
        table.add_row(c.name, f"[{styles[c.status]}]{c.status}[/]", c.value, c.advice)
    stdout_console().print(table)
