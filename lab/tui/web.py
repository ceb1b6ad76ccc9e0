"""``lab web``: the same terminal UI in a browser, served by textual-serve.

Each browser tab gets its own ``python -m lab tui`` process; the server only relays
the terminal. It binds 127.0.0.1 unless the user passes another ``--host`` on purpose.

Who can reach what:

* Every page, websocket and download needs the server's secret token, printed in the
  URL as Jupyter does (``/?token=…``). The first request with the token gets a cookie and
  is sent on to ``/``, so the address bar (on a projector) no longer shows it. Anything
  without it gets 403 and one line. The websocket must also come from a page of this
  server (its ``Origin``), so another site open in the same browser cannot drive it.
* A view-only server (``--view-only``; the default on any host but loopback) starts its
  sessions with ``lab tui --view-only``: the keys that start, stop, change or delete
  runs do nothing and say so. ``--control`` hands the full controls to whoever has the
  token.

The port is bound before anything is printed, so a port already in use is one line.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from lab.errors import LabError

TOKEN_BYTES = 24
"""Random bytes in a generated token (``secrets.token_urlsafe``: 32 characters)."""


class WebError(LabError):
    """``lab web`` cannot serve (the port is in use, the host unknown); one line."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) reaches this machine only.

    A name counts as loopback when every address it resolves to is a loopback one
    (``localhost``); a wildcard (``0.0.0.0``, ``::``) or any other address does not.
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def tui_command(db_path: Path, experiments_dir: Path, view_only: bool = False) -> str:
    """The shell command textual-serve runs per browser session.

    Paths are made absolute so the sessions use the files the user meant, whatever the
    server's working directory; the interpreter is this one, so the same installation
    serves.
    """
    return shlex.join([
        sys.executable, "-m", "lab", "tui",
        "--db", str(Path(db_path).resolve()),
        "--experiments", str(Path(experiments_dir).resolve()),
        *(["--view-only"] if view_only else []),
    ])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``.

    Raises:
        WebError: the port is in use, the host is unknown, or the address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise WebError(f"lab web: --host {host}: unknown host ({exc.strerror or exc})") from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Like aiohttp: a port left in TIME_WAIT by the last server is free; one in use is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = ("the port is already in use (another lab web? pass --port)"
               if exc.errno in (98, 48) else exc.strerror or str(exc))
        raise WebError(f"lab web: cannot serve on {host}:{port}: {why}") from None
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class Access:
    """Who may do what on a ``lab web`` server."""

    token: str
    """The secret every page and websocket needs."""
    control: bool
    """Whether the sessions have the full controls (else view-only)."""


def share_urls(host: str, port: int, token: str) -> list[str]:
    """The URLs (with the token) that reach a server bound to ``host:port``: the host
    itself, or for a wildcard this machine's name and each of its addresses."""
    query = f"/?token={token}"
    if host not in ("0.0.0.0", "::", ""):
        shown = f"[{host}]" if ":" in host else host
        return [f"http://{shown}:{port}{query}"]
    import psutil

    names = [socket.gethostname()]
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not ipaddress.ip_address(address.address).is_loopback:
                names.append(address.address)
    return [f"http://{name}:{port}{query}" for name in dict.fromkeys(names)]


def _forbidden(why: str) -> web.Response:
    return web.Response(status=403, text=f"lab web: {why}\n")


class LabServer(Server):
    """textual-serve's server behind a token, on a socket bound beforehand.

    Args:
        command: the per-session command (``tui_command``).
        sock: the listening socket (``bind``).
        access: the token and whether sessions have the controls.
        urls: the URLs to print.
    """

    def __init__(self, command: str, sock: socket.socket, access: Access, urls: list[str]) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(command, host=str(host), port=int(port), title="Scalability Lab")
        self.sock = sock
        self.access = access
        self.urls = urls
        self.cookie = f"lab-web-token-{port}"
        """Cookie name; one per port, so two servers on one host keep their own tokens."""

    def _has_token(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.access.token.encode())

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Let a request through only with the token (query or cookie); see the module."""
        if request.path.startswith("/static/"):
            return await handler(request)  # textual-serve's own scripts, styles and fonts
        given = request.query.get("token")
        if given is not None:
            if not self._has_token(given):
                return _forbidden("wrong token; open the URL that 'lab web' printed")
            if request.path == "/" and request.method == "GET":
                # From here a cookie carries the token, and the address bar (maybe on a
                # projector) shows the page without it.
                rest = {k: v for k, v in request.query.items() if k != "token"}
                target = request.rel_url.with_query(rest)
                response = web.Response(status=302, headers={"Location": str(target)})
                response.set_cookie(self.cookie, given, httponly=True, samesite="Strict", path="/")
                return response
        elif not self._has_token(request.cookies.get(self.cookie)):
            return _forbidden("this page needs the token; open the URL that 'lab web' printed "
                              "(…/?token=…)")
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin and urlsplit(origin).netloc != request.host:
            return _forbidden(f"the session must be opened from this server's page, not {origin}")
        return await handler(request)

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get("/ws", self.handle_websocket, name="websocket"),
            web.get("/download/{key}", self.handle_download, name="download"),
            web.static("/static", self.statics_path, show_index=False, name="static"),
        ])
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page, with its websocket and static URLs on the address the browser used
        (textual-serve's own use the bind address, which a wildcard makes unreachable)."""
        base = f"{request.scheme}://{request.host}"
        ws_base = ("wss" if request.scheme == "https" else "ws") + f"://{request.host}"
        router = request.app.router
        static = f"{base}{router['static'].url_for(filename='/')}".rstrip("/") + "/"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{ws_base}{router['websocket'].url_for()}",
            "config": {"static": {"url": static}},
            "application": {"name": self.title},
        }

    async def on_startup(self, app: web.Application) -> None:
        """Print what is served, to whom, and the URLs (the port is already bound)."""
        mode = ("full control (start, stop, change and delete runs)" if self.access.control
                else "view only (keys that start, stop, change or delete runs do nothing)")
        self.console.print(f"lab web: Scalability Lab in a browser, {mode}", highlight=False,
                           soft_wrap=True)
        for url in self.urls:
            self.console.print(f"  {url}", highlight=False, soft_wrap=True)
        self.console.print("Anyone with the URL can " + ("control the lab" if self.access.control
                                                         else "look at the runs")
                           + "; Ctrl+C stops the server.", highlight=False, soft_wrap=True)

    def serve(self, debug: bool = False) -> None:
        """Serve until Ctrl+C or SIGTERM, on the socket bound beforehand."""
        import asyncio
        import signal

        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.add_signal_handler(signal.SIGINT, self.request_exit)
        loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        # No access log: it would print every URL, the token included.
        web.run_app(self._make_app(), sock=self.sock, handle_signals=False, loop=loop,
                    print=lambda *args: None, access_log=None)


def serve(db_path: Path, experiments_dir: Path, host: str = "127.0.0.1", port: int = 8000,
          control: bool | None = None, token: str | None = None) -> None:
    """Serve the TUI at ``http://HOST:PORT/?token=…`` until interrupted.

    Args:
        db_path: the results database.
        experiments_dir: where experiments are listed from.
        host: interface to bind; anything but loopback shares the lab on a network.
        port: TCP port.
        control: whether sessions have the full controls; None: on a loopback host
            only (anywhere else the sessions are view-only).
        token: the secret in the URL; None generates one.

    Raises:
        WebError: the port is in use or the host cannot be bound (before anything is printed).
    """
    sock = bind(host, port)
    try:
        access = Access(token=token or secrets.token_urlsafe(TOKEN_BYTES),
                        control=is_loopback(host) if control is None else control)
        bound_port = int(sock.getsockname()[1])
        command = tui_command(db_path, experiments_dir, view_only=not access.control)
        server = LabServer(command, sock, access, share_urls(host, bound_port, access.token))
    except BaseException:
        sock.close()
        raise
    server.serve()
