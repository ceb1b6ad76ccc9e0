"""Load ``lab web`` in headless Chromium and take a screenshot once the app has drawn.

Chromium's one-shot ``--screenshot`` fires before the app's first bytes arrive over
the websocket (virtual time does not wait for a websocket), so this drives Chromium
over the DevTools protocol instead: open the page, wait for textual-serve's
``-first-byte`` mark on the body, let it draw, capture. Used by ``test_web.py``; also a
script: ``python -m tests.tui.web_shot URL OUT.png``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,800",
]


def chromium() -> str | None:
    """The Chromium executable (Debian's ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Whether something accepts connections on host:port within ``timeout`` seconds."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


async def _cdp(ws: aiohttp.ClientWebSocketResponse, ids: itertools.count[int], method: str,
               params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg_id = next(ids)
    await ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
    while True:
        reply = json.loads((await ws.receive()).data)
        if reply.get("id") == msg_id:
            return reply.get("result", {})


async def _shoot(devtools_port: int, url: str, wait_s: float) -> tuple[bool, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as resp:
            pages = [t for t in await resp.json() if t.get("type") == "page"]
        async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = itertools.count(1)
            await _cdp(ws, ids, "Page.enable")
            await _cdp(ws, ids, "Page.navigate", {"url": url})
            drawn = False
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                result = await _cdp(ws, ids, "Runtime.evaluate", {
                    "expression": "document.body && document.body.classList.contains('-first-byte')",
                    "returnByValue": True})
                if result.get("result", {}).get("value") is True:
                    drawn = True
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(1.5)  # the first frames, and the fade-in of the terminal
            shot = await _cdp(ws, ids, "Page.captureScreenshot", {"format": "png"})
            return drawn, base64.b64decode(shot["data"])


def screenshot(url: str, out: Path, timeout: float = 30.0) -> bool:
    """Open ``url`` in headless Chromium, wait for the app's first bytes, save a PNG.

    Returns:
        Whether the app drew (its first bytes reached the page) before ``timeout``.

    Raises:
        RuntimeError: Chromium is not installed or its DevTools endpoint did not start.
    """
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="lab-chromium-")
    proc = subprocess.Popen(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium's DevTools endpoint did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        drawn, png = asyncio.run(_shoot(port, url, timeout))
        out.write_bytes(png)
        return drawn
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    ok = screenshot(sys.argv[1], Path(sys.argv[2]))
    print("drawn" if ok else "not drawn", sys.argv[2])
