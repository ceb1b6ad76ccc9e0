"""A target's ``/stats`` on a port of its own, answered by a thread of its own.

A saturated target answers its own ``/stats`` late or never: the request waits in line
behind every request before it, in the accept queue and on the event loop (the caching
experiment's no-cache target spends ~7 ms of its one event loop per page with 32 pages
in line, and on a busy machine a 2 s read gave up, leaving the run with no cache hit
ratio). So a target also answers ``GET /stats`` on the port the environment variable
``LAB_STATS_PORT`` names (the lab sets it when it starts the target), from a daemon
thread running the standard library's HTTP server, which the event loop's work does not
hold up: the thread only needs the GIL, which a busy thread hands over every 5 ms
(``sys.getswitchinterval()``). Without ``LAB_STATS_PORT`` nothing is started; the app's
own ``/stats`` route answers the same figures either way.

Under ``uvicorn --workers N`` every worker process binds the port with ``SO_REUSEPORT``
and the kernel hands each connection to one of them, as it does the app's own port.

The figures are read in that thread, while the app's handlers change them: counters one
request changes together must change at once as far as another thread can tell, so a
reader never sees half of a request (a page counted, its three downstream calls not yet).
`Counters` does that with a lock; a target whose counters live elsewhere (a shared-memory
file, a database) reads them under that store's own rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORT_ENV = "LAB_STATS_PORT"
"""The environment variable naming the port to serve the stats on (127.0.0.1)."""

Snapshot = Callable[[], Mapping[str, Any]]


class Counters:
    """Named integer counters that a request changes together, read consistently from
    any thread: ``add(requests=1, downstream_calls=3)`` counts one whole request at once.
    """

    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(names, 0)

    def add(self, **deltas: int) -> None:
        """Add each delta to its counter, all at once (KeyError for an unknown name)."""
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def snapshot(self) -> dict[str, int]:
        """Every counter at one instant."""
        with self._lock:
            return dict(self._values)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values[name]


class _ReusePortServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def _handler(snapshot: Snapshot, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the lab reads every second

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path.split("?", 1)[0] != path:
                self._send(404, b'{"error": "not found"}')
                return
            try:
                body = json.dumps(snapshot()).encode()
            except Exception as exc:  # a figure that failed to read: say which, stay up
                self._send(500, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                return
            self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            pass  # one line per read every second would drown the target's own output

    return Handler


@contextlib.contextmanager
def serve_stats(snapshot: Snapshot, path: str = "/stats") -> Iterator[int | None]:
    """Answer ``GET path`` with ``snapshot()`` as JSON on ``127.0.0.1:$LAB_STATS_PORT``
    from a daemon thread, for as long as the context lasts (a target's lifespan).

    Yields the port served, or None when ``LAB_STATS_PORT`` is unset, or cannot be bound
    (one line on stderr; the app's own ``/stats`` route still answers).
    """
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        yield None
        return
    try:
        server = _ReusePortServer(("127.0.0.1", int(raw)), _handler(snapshot, path))
    except (OSError, ValueError) as exc:
        print(f"stats: cannot serve stats on {PORT_ENV}={raw!r}: {exc}", file=sys.stderr, flush=True)
        yield None
        return
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="stats-port", daemon=True)
    thread.start()
    try:
        yield int(raw)
    finally:
        server.shutdown()
        server.server_close()
