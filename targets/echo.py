"""The cheapest possible endpoint, and a count of the TCP connections it is reached over.

A plain ASGI app (no framework) so that a request costs the server as little as it can:
what is left to see is the cost of the *connection* a request comes over. The
connection-reuse experiment sends the same requests over kept-alive connections and
over a new connection per request.

- ``GET /ping`` → ``pong`` (counted in ``requests``).
- ``GET /health`` → ``ok``.
- ``GET /stats`` → ``{"requests": N, "connections": M}``.

``connections`` counts the client connections requests arrived on. uvicorn builds the
``scope["client"]`` address tuple once per connection and hands that same object to every
request on the connection; a request whose tuple is not the object last seen for its
address (host, port) came over a new connection. (Comparing addresses alone would not
do: at thousands of new connections per second the client's operating system hands the
same local ports out again within seconds.) ``per_request.connections`` is therefore
≈ 1 with a new connection per request and ≈ 0 with keep-alive. A server that builds a
new tuple for every request would make every request look like a new connection.
A request and its connection are counted at once (a stats reader sees both or neither).
Also served on ``LAB_STATS_PORT`` (``targets.statsport``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from targets.statsport import serve_stats

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ConnectionCounter:
    """Counts requests and the distinct client connections they arrived on.

    Memory is bounded by the address space: one entry per (host, port) ever seen.
    """

    def __init__(self) -> None:
        self.totals = (0, 0)
        """(requests, connections): one tuple, replaced whole, so another thread reads both
        of one moment."""
        self._last: dict[tuple[str, int], object] = {}

    @property
    def requests(self) -> int:
        return self.totals[0]

    @property
    def connections(self) -> int:
        return self.totals[1]

    def seen(self, client: tuple[str, int] | None) -> None:
        """Count one request from ``client`` (ASGI ``scope["client"]``, as given)."""
        new = True  # no address (e.g. a unix socket): assume the worst
        if client is not None:
            key = (str(client[0]), int(client[1]))
            new = self._last.get(key) is not client
            if new:
                # Holding the object keeps its id from being reused by a later connection's.
                self._last[key] = client
        requests, connections = self.totals
        self.totals = (requests + 1, connections + int(new))

    def stats(self) -> dict[str, Any]:
        requests, connections = self.totals
        return {"requests": requests, "connections": connections}


counter = ConnectionCounter()


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        with contextlib.ExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    stack.enter_context(serve_stats(lambda: counter.stats()))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    stack.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/ping":
        counter.seen(scope.get("client"))
        await _respond(send, 200, b"pong", b"text/plain")
    elif path == "/health":
        await _respond(send, 200, b"ok", b"text/plain")
    elif path == "/stats":
        await _respond(send, 200, json.dumps(counter.stats()).encode(), b"application/json")
    else:
        await _respond(send, 404, b"not found", b"text/plain")
