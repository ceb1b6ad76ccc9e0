"""``lab web`` in headless Chromium: the page loads and the experiments screen draws.

Skipped where Debian's ``chromium`` is not installed. The server runs in its own
process group and is ended with it (the per-session ``lab tui`` processes included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lab.tui.web import tui_command
from tests.conftest import REPO, still_running
from tests.tui.web_shot import chromium, screenshot, wait_for_port

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def web_server(tmp_path: Path, experiments_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m lab web`` on a free port of 127.0.0.1; ended with all its children."""
    port = _free_port()
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "web", "--db", str(tmp_path / "web.db"),
         "--experiments", str(experiments_dir), "--port", str(port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for_port("127.0.0.1", port, 30), (tmp_path / "web.log").read_text()
        yield f"http://127.0.0.1:{port}", proc
    finally:
        children = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(proc.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for child in still_running(children, 5):
            child.kill()
        log.close()


def test_web_serves_the_experiments_screen(web_server: tuple[str, subprocess.Popen[bytes]],
                                           tmp_path: Path) -> None:
    url, proc = web_server
    out = tmp_path / "web.png"
    drawn = screenshot(url, out, timeout=40)
    assert drawn, "the app sent nothing to the page"
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a drawn screen, not a blank page
    assert proc.poll() is None  # the server outlives a session


def test_web_command_binds_loopback_and_uses_absolute_paths(tmp_path: Path) -> None:
    command = tui_command(Path("results.db"), Path("experiments"))
    assert " -m lab tui " in command
    assert str(Path("results.db").resolve()) in command
    assert str(Path("experiments").resolve()) in command
    from click.testing import CliRunner

    from lab.cli import web

    help_text = CliRunner().invoke(web, ["--help"]).output
    assert "127.0.0.1" in help_text
