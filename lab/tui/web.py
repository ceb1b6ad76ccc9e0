"""``lab web``: the same terminal UI in a browser, served by textual-serve.

Each browser tab gets its own ``python -m lab tui`` process; the server only relays
the terminal. It binds 127.0.0.1 unless the user passes another ``--host`` on purpose.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from textual_serve.server import Server


def tui_command(db_path: Path, experiments_dir: Path) -> str:
    """The shell command textual-serve runs per browser session.

    Paths are made absolute so the sessions use the files the user meant, whatever the
    server's working directory; the interpreter is this one, so the same installation
    serves.
    """
    return shlex.join([
        sys.executable, "-m", "lab", "tui",
        "--db", str(Path(db_path).resolve()),
        "--experiments", str(Path(experiments_dir).resolve()),
    ])


def serve(db_path: Path, experiments_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the TUI at ``http://HOST:PORT`` until interrupted.

    Args:
        db_path: the results database.
        experiments_dir: where experiments are listed from.
        host: interface to bind; anything but 127.0.0.1 shares the lab on a network.
        port: TCP port.
    """
    server = Server(tui_command(db_path, experiments_dir), host=host, port=port,
                    title="Scalability Lab")
    server.serve()
