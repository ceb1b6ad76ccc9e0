"""The connection-reuse target in process: how it counts connections, its endpoints."""

from __future__ import annotations

import pytest

from targets import echo
from tests.asgi import running


def test_counter_counts_connections_by_identity_not_address() -> None:
    counter = echo.ConnectionCounter()
    first = ("127.0.0.1", 40000)
    counter.seen(first)
    counter.seen(first)  # the same connection: uvicorn hands every request the same tuple
    assert (counter.requests, counter.connections) == (2, 1)
    counter.seen(("127.0.0.1", 40001))
    assert counter.connections == 2
    # A later connection on a reused port has an equal address but a new tuple.
    counter.seen(("127.0.0.1", int("40000")))
    counter.seen(None)  # no address at all: counted as new
    assert counter.stats() == {"requests": 5, "connections": 4}


async def test_ping_health_and_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(echo, "counter", echo.ConnectionCounter())
    async with running(echo.app) as client:
        pings = [await client.get("/ping") for _ in range(3)]
        assert (await client.get("/health")).text == "ok"
        assert (await client.get("/nope")).status_code == 404
        stats = (await client.get("/stats")).json()
    assert [(r.status_code, r.text) for r in pings] == [(200, "pong")] * 3
    assert stats["requests"] == 3  # only /ping counts
    assert stats["connections"] >= 1
