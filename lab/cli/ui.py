"""``lab tui`` and ``lab web``: the terminal UI, in a terminal or served to a browser."""

from __future__ import annotations

from pathlib import Path

import click

from lab.cli.common import check_before_ui, db_option, fail, lab_command


@lab_command()
@db_option
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False),
              default="experiments", show_default=True, help="Where experiments are listed from.")
@click.option("--view-only", is_flag=True,
              help="Look only: keys that start, stop, change or delete runs do nothing (and say so); "
                   "the results database is only read.")
def tui(db_path: str, experiments_dir: str, view_only: bool) -> None:
    """Open the terminal UI: pick an experiment, watch it live, browse and compare runs."""
    from lab.tui.app import run_tui

    check_before_ui(db_path)
    run_tui(db_path=Path(db_path), experiments_dir=Path(experiments_dir), view_only=view_only)


@lab_command()
@db_option
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False),
              default="experiments", show_default=True, help="Where experiments are listed from.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on; anything but loopback shares the lab on a network "
                   "(view-only unless --control).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="TCP port to serve on.")
@click.option("--view-only", is_flag=True,
              help="Serve a view for an audience: keys that start, stop, change or delete runs do "
                   "nothing (the default when --host is not loopback).")
@click.option("--control", is_flag=True,
              help="Give full control to whoever has the URL, on any --host (the default on loopback).")
def web(db_path: str, experiments_dir: str, host: str, port: int, view_only: bool,
        control: bool) -> None:
    """Serve the terminal UI in a browser (textual-serve), for workshops and projectors.

    Every page needs the secret token in the printed URL; without it, 403.
    """
    from lab.tui.web import serve

    if view_only and control:
        fail("lab web: --view-only and --control exclude each other")
    check_before_ui(db_path)
    serve(db_path=Path(db_path), experiments_dir=Path(experiments_dir), host=host, port=port,
          control=True if control else (False if view_only else None))
