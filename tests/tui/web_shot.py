"""Drive ``lab web`` in headless Chromium: load the page, read what the app drew, press
keys, take a screenshot.

Chromium's one-shot ``--screenshot`` fires before the app's first bytes arrive over
the websocket (virtual time does not wait for a websocket), so this drives Chromium
over the DevTools protocol instead (``browser_page``): open the page, wait for
textual-serve's ``-first-byte`` mark on the body, let it draw, capture. The app draws on
a canvas, so the text it drew is read from what its websocket delivered (a wrapper
installed before the page's own scripts keeps a copy), with the terminal's escape
sequences removed. Used by ``test_web.py``; also a script: ``python -m tests.tui.web_shot
URL OUT.png``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,800",
]

_KEEP_TERMINAL_TEXT = """
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  window.__labTerminal = "";
  window.WebSocket = function (url, protocols) {
    const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        window.__labTerminal += decoder.decode(new Uint8Array(event.data), {stream: true});
      }
    });
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""
"""Installed before the page's scripts: keeps the text of every binary (terminal) frame."""

_ESCAPES = re.compile(r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]"        # CSI: cursor, colours, modes
                      r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, links
                      r"|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


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


class Page:
    """One Chromium tab, driven over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are skipped)."""
        msg_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        while True:
            reply = json.loads((await self._ws.receive()).data)
            if reply.get("id") == msg_id:
                return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, wait_s: float) -> bool:
        """Whether ``expression`` became true in the page within ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if await self.evaluate(expression) is True:
                return True
            await asyncio.sleep(0.2)
        return False

    async def goto(self, url: str, wait_s: float = 20.0) -> None:
        """Open ``url`` and wait until the new document has loaded."""
        await self.evaluate("window.__labLeaving = true")
        await self.call("Page.navigate", {"url": url})
        await self.wait_for("!window.__labLeaving && document.readyState === 'complete'", wait_s)

    async def body_text(self) -> str:
        """The page's visible text (for a plain-text answer: the answer)."""
        return str(await self.evaluate("document.body ? document.body.innerText : ''") or "")

    async def wait_drawn(self, wait_s: float) -> bool:
        """Whether the app's first bytes reached the page within ``wait_s`` seconds."""
        return await self.wait_for(
            "document.body && document.body.classList.contains('-first-byte')", wait_s)

    async def terminal_text(self) -> str:
        """Everything the app has drawn so far, as text without escape sequences."""
        raw = str(await self.evaluate("window.__labTerminal || ''") or "")
        return _ESCAPES.sub("", raw)

    async def wait_for_text(self, needle: str, wait_s: float) -> bool:
        """Whether the app drew ``needle`` within ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if needle in await self.terminal_text():
                return True
            await asyncio.sleep(0.2)
        return False

    async def press(self, key: str) -> None:
        """Type one character into the terminal."""
        await self.evaluate("document.querySelector('.xterm-helper-textarea')?.focus()")
        for kind in ("keyDown", "keyUp"):
            params: dict[str, Any] = {"type": kind, "key": key}
            if kind == "keyDown":
                params["text"] = key
            await self.call("Input.dispatchKeyEvent", params)

    async def screenshot(self) -> bytes:
        """A PNG of the page."""
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(shot["data"])


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile, ended afterwards) and its first tab.

    Raises:
        RuntimeError: Chromium is not installed or its DevTools endpoint did not start.
    """
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="lab-chromium-")
    proc = await asyncio.create_subprocess_exec(
        exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError("chromium's DevTools endpoint did not start")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t.get("type") == "page"]
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Page.addScriptToEvaluateOnNewDocument", {"source": _KEEP_TERMINAL_TEXT})
                yield page
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                await asyncio.wait_for(proc.wait(), 10)
                break
            except TimeoutError:
                continue
        shutil.rmtree(profile, ignore_errors=True)


async def _shoot(url: str, wait_s: float) -> tuple[bool, bytes]:
    async with browser_page() as page:
        await page.call("Page.navigate", {"url": url})
        drawn = await page.wait_drawn(wait_s)
        await asyncio.sleep(1.5)  # the first frames, and the fade-in of the terminal
        return drawn, await page.screenshot()


def screenshot(url: str, out: Path, timeout: float = 30.0) -> bool:
    """Open ``url`` in headless Chromium, wait for the app's first bytes, save a PNG.

    Returns:
        Whether the app drew (its first bytes reached the page) before ``timeout``.

    Raises:
        RuntimeError: Chromium is not installed or its DevTools endpoint did not start.
    """
    drawn, png = asyncio.run(_shoot(url, timeout))
    out.write_bytes(png)
    return drawn


if __name__ == "__main__":
    ok = screenshot(sys.argv[1], Path(sys.argv[2]))
    print("drawn" if ok else "not drawn", sys.argv[2])
