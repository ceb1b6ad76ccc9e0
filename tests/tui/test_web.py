"""``lab web`` in headless Chromium: the page needs the printed token, an audience view
cannot start or delete runs, and a busy port is one line.

Skipped where Debian's ``chromium`` is not installed (the busy-port and host checks run
everywhere). The server runs in its own process group and is ended with it (the
per-session ``lab tui`` processes included). Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from lab.store import Store
from lab.tui.web import is_loopback, tui_command
from tests.conftest import REPO, lab_in_process, one_line_error, run_lab, still_running
from tests.synthetic import QUICK
from tests.tui.web_shot import browser_page, chromium, screenshot, wait_for_port

needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class WebServer:
    base: str
    """``http://127.0.0.1:PORT`` (no token)."""
    url: str
    """The URL ``lab web`` printed, token included."""
    banner: str
    """What it printed."""
    proc: subprocess.Popen[bytes]
    db: Path


def _sessions(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The ``lab tui`` processes the server started (one per browser session)."""
    with contextlib.suppress(psutil.Error):
        return [p for p in psutil.Process(proc.pid).children(recursive=True)
                if " tui " in f" {' '.join(p.cmdline())} "]
    return []


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Callable[..., WebServer]]:
    """Start ``python -m lab web ARGS`` on a free port of 127.0.0.1; every server started
    is ended with all its children."""
    started: list[tuple[subprocess.Popen[bytes], list[psutil.Process]]] = []

    def start(*args: str, db: Path, experiments: Path) -> WebServer:
        port = _free_port()
        log_path = tmp_path / f"web-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lab", "web", "--db", str(db), "--experiments", str(experiments),
                 "--port", str(port), *args],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, []))
        assert wait_for_port("127.0.0.1", port, 30), log_path.read_text()
        deadline = time.monotonic() + 10
        while "?token=" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        banner = log_path.read_text()
        found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", banner)
        assert found, banner
        return WebServer(f"http://127.0.0.1:{port}", found.group(0), banner, proc, db)

    yield start
    for proc, _ in started:
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


@needs_chromium
def test_web_serves_the_experiments_screen(start_web: Callable[..., WebServer], tmp_path: Path,
                                           experiments_dir: Path) -> None:
    server = start_web(db=tmp_path / "web.db", experiments=experiments_dir)
    assert "full control" in server.banner  # loopback: the presenter keeps the controls
    out = tmp_path / "web.png"
    drawn = screenshot(server.url, out, timeout=40)
    assert drawn, "the app sent nothing to the page"
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a drawn screen, not a blank page
    assert server.proc.poll() is None  # the server outlives a session


@needs_chromium
async def test_without_the_token_nothing_is_served(start_web: Callable[..., WebServer], tmp_path: Path,
                                                   experiments_dir: Path) -> None:
    server = start_web(db=tmp_path / "web.db", experiments=experiments_dir)
    async with browser_page() as page:
        for url in (f"{server.base}/", f"{server.base}/?token=guessed"):
            await page.goto(url)
            text = (await page.body_text()).strip()
            assert text.startswith("lab web: ") and "token" in text, text
            assert len(text.splitlines()) == 1, text
            # The answer is that line alone: no script that could start the app later.
            assert await page.evaluate("document.scripts.length") == 0, f"{url}: the app was served"
        # Nor does the websocket open a session without it (a script need not load the page).
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.base}/ws?width=80&height=24") as resp:
                assert resp.status == 403
                assert (await resp.text()).count("\n") == 1
            async with http.get(f"{server.base}/?token=guessed", allow_redirects=False) as resp:
                assert resp.status == 403
        assert _sessions(server.proc) == []
        # With the printed URL the page loads, and the token leaves the address bar.
        await page.goto(server.url)
        assert await page.wait_drawn(40), "the app did not draw with the printed URL"
        assert await page.evaluate("document.scripts.length") > 0  # what the refusals lacked
        location = await page.evaluate("window.location.href")
        assert "token" not in location and location.startswith(server.base)


@needs_chromium
async def test_view_only_keys_do_nothing_and_say_so(start_web: Callable[..., WebServer], tmp_path: Path,
                                                    fixture_db: Path) -> None:
    folder = tmp_path / "only-quick"
    folder.mkdir()
    (folder / "quick.toml").write_text(QUICK)
    with Store(fixture_db, readonly=True) as store:
        stored = [r.id for r in store.list_runs()]
    server = start_web("--view-only", db=fixture_db, experiments=folder)
    assert "view only" in server.banner
    async with browser_page() as page:
        await page.goto(server.url)
        assert await page.wait_drawn(40)
        assert await page.wait_for_text("Quick check", 30), await page.terminal_text()
        await page.press("r")
        assert await page.wait_for_text("view-only: this view cannot start runs", 20), \
            await page.terminal_text()
        await page.press("h")
        assert await page.wait_for_text("no-cache", 20), await page.terminal_text()  # the history
        await page.press("d")
        assert await page.wait_for_text("view-only: this view cannot delete runs", 20), \
            await page.terminal_text()
        assert "Delete run" not in await page.terminal_text()  # no confirmation was asked
    with Store(fixture_db, readonly=True) as store:
        assert [r.id for r in store.list_runs()] == stored  # nothing started, nothing deleted


def test_a_busy_port_is_one_line_before_anything_is_printed(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = run_lab("web", "--port", str(port), "--db", str(tmp_path / "web.db"), timeout=30)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line == f"lab web: cannot serve on 127.0.0.1:{port}: the port is already in use " \
                   "(another lab web? pass --port)"


def test_who_gets_the_controls(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.20")
    command = tui_command(Path("results.db"), Path("experiments"))
    assert " -m lab tui " in command and "--view-only" not in command
    assert str(Path("results.db").resolve()) in command
    assert str(Path("experiments").resolve()) in command
    assert tui_command(Path("results.db"), Path("experiments"), view_only=True).endswith(" --view-only")
    res = run_lab("web", "--view-only", "--control", "--db", str(tmp_path / "web.db"), timeout=30)
    assert "exclude each other" in one_line_error(res.returncode, res.stdout, res.stderr)
    help_text = lab_in_process("web", "--help").stdout
    assert "127.0.0.1" in help_text and "--view-only" in help_text and "--control" in help_text


def _wait_running_with_intervals(db: Path, wait_s: float) -> bool:
    """Whether results.db came to hold a running run that has stored an interval, polled
    for up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):
            if db.exists():
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    if conn.execute("SELECT count(*) FROM intervals JOIN runs ON runs.id = "
                                    "intervals.run_id WHERE runs.status = 'running'").fetchone()[0]:
                        return True
        time.sleep(0.1)
    return False


@needs_chromium
@pytest.mark.parametrize("how", ["tab left", "browser ended"])
async def test_closing_the_tab_mid_run_stores_the_run_as_aborted(start_web: Callable[..., WebServer],
                                                                 tmp_path: Path, how: str) -> None:
    folder = tmp_path / "only-quick"
    folder.mkdir()
    (folder / "quick.toml").write_text(QUICK.replace('duration = "3s"', 'duration = "8s"'))
    db = tmp_path / "web.db"
    server = start_web(db=db, experiments=folder)
    async with browser_page() as page:
        await page.goto(server.url)
        assert await page.wait_drawn(40)
        assert await page.wait_for_text("Quick check", 30), await page.terminal_text()
        await page.press("r")
        assert await asyncio.to_thread(_wait_running_with_intervals, db, 40), await page.terminal_text()
        sessions = _sessions(server.proc)
        assert sessions
        if how == "tab left":
            await page.goto("about:blank")  # its websocket closes
        # else: leaving this block ends Chromium, the connection with it
    # The session's lab tui ends once the run is stopped and stored.
    _, alive = psutil.wait_procs(sessions, timeout=30)
    assert not alive, "the session outlived its closed tab"
    with Store(db, readonly=True) as store:
        (run,) = store.list_runs()
        assert (run.status, run.reason) == ("aborted", "stopped: the browser tab was closed")
        assert store.intervals(run.id)
        assert run.summary is not None and run.summary.requests > 0
    log = (tmp_path / f"web-{server.base.rsplit(':', 1)[1]}.log").read_text()
    assert "Traceback" not in log and "never retrieved" not in log, log
    assert server.proc.poll() is None  # the server outlives the session
