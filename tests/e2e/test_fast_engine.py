"""The fast client engine against a real ``uvicorn targets.testing:app``, on asyncio and on
uvloop: bodies, statuses, ``Connection: close``, a slow body, cancellation, keep-alive off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lab.load.fast_engine import FastEngine
from lab.load.outcome import Outcome
from lab.topology.targets import free_port
from tests.conftest import REPO
from tests.unit.test_fast_engine import (  # noqa: F401 (fixture)
    _IDEMPOTENT,
    Handler,
    Runner,
    close,
    exchange,
    req,
    reset,
    run,
    serve,
    until,
)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real uvicorn serving the testing target (trickle: 1 byte / 0.5 s)."""
    port = free_port()
    log = tmp_path_factory.mktemp("fastclient") / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "targets.testing:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=REPO, env={**os.environ, "TRICKLE_EVERY_S": "0.5"}, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"uvicorn exited with {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn never became ready: {log.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- keep-alive on and off, both engines, against a real uvicorn -------------------------


class _PeerRecorder:
    """A tiny ASGI app that answers ``ok`` and records each request's client address."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.peers.append(tuple(scope["client"]))  # type: ignore[arg-type]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _established_to(port: int) -> int:
    """This process's ESTABLISHED TCP connections to ``port`` on loopback."""
    import psutil

    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr[1] == port and c.status == psutil.CONN_ESTABLISHED)


# -- against uvicorn --------------------------------------------------------------------


def test_content_length_and_chunked_bodies_are_counted_exactly(run: Runner, target: str) -> None:
    engine, outs = run(exchange(target, req("/fast"), req("/chunked"), req("/fast"),
                                req("/fast", "HEAD"), req("/chunked", "HEAD"), req("/fast")))
    assert outs == [Outcome(200, 2, None), Outcome(200, 3000, None), Outcome(200, 2, None),
                    Outcome(200, 0, None), Outcome(200, 0, None), Outcome(200, 2, None)]
    assert (engine.connects, engine.reconnects) == (1, 0)  # all on one keep-alive connection


def test_connection_close_reconnects_without_error(run: Runner, target: str) -> None:
    engine, outs = run(exchange(target, req("/close"), req("/close"), req("/close"), req("/fast")))
    assert outs == [Outcome(200, 6, None)] * 3 + [Outcome(200, 2, None)]
    assert (engine.connects, engine.reconnects, engine.retries) == (4, 3, 0)


def test_statuses_are_classified_and_keep_the_connection(run: Runner, target: str) -> None:
    engine, outs = run(exchange(target, req("/status/404"), req("/status/503"), req("/status/204"),
                                req("/status/404", expect=frozenset({404})), req("/fast", "POST")))
    assert [(o.status, o.error_class) for o in outs] == [
        (404, "http_4xx"), (503, "http_5xx"), (204, None), (404, None), (405, "http_4xx")]
    assert outs[0].message == "HTTP 404"
    assert engine.connects == 1


def test_slow_body_runs_into_the_total_deadline(run: Runner, target: str) -> None:
    async def go() -> tuple[FastEngine, Outcome, float, Outcome]:
        engine = FastEngine(target, 1.0)
        conn = engine.new_client()
        try:
            await engine.send(conn, req("/fast"))  # the deadline must cover a reused connection
            t0 = time.monotonic()
            slow = await engine.send(conn, req("/trickle"))
            elapsed = time.monotonic() - t0
            after = await engine.send(conn, req("/fast"))
        finally:
            await conn.aclose()
        return engine, slow, elapsed, after

    engine, slow, elapsed, after = run(go())
    assert slow.error_class == "timeout" and slow.status is None
    # The whole body would take 10 s, one byte every 0.5 s: a deadline per read would never
    # fire. (Measured 1.00 s; a busy machine only wakes the timer later.)
    assert 0.95 <= elapsed < 5, elapsed
    assert 1 <= slow.nbytes <= 2  # bytes at 0.5 s (and maybe 1.0 s) arrived before the deadline
    assert after == Outcome(200, 2, None)  # the timed-out connection was dropped, a new one works
    assert engine.reconnects == 1


def test_deadline_holds_after_the_lazy_timer_was_rearmed(run: Runner, target: str) -> None:
    # Each connection keeps one timer, armed for an early request's deadline and moved
    # on when it fires; after many requests it must still end a slow one on time.
    async def go() -> tuple[Outcome, float, int]:
        engine = FastEngine(target, 0.3)
        conn = engine.new_client()
        sent = 0
        try:
            end = time.monotonic() + 0.7
            while time.monotonic() < end:
                assert (await engine.send(conn, req("/fast"))).error_class is None
                sent += 1
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            slow = await engine.send(conn, req("/trickle"))
            return slow, time.monotonic() - t0, engine.connects
        finally:
            await conn.aclose()

    slow, elapsed, connects = run(go())
    assert slow.error_class == "timeout"
    # At its 0.3 s deadline: before the first body byte, which comes at 0.5 s (measured
    # 0.30 s); a stale timer would have let it run to a later one, or to the end at 10 s.
    assert elapsed >= 0.28 and slow.nbytes == 0, (elapsed, slow)
    assert connects == 1  # the fast requests shared one connection


def test_cancellation_drops_the_connection(run: Runner, target: str) -> None:
    async def go() -> tuple[FastEngine, Outcome]:
        engine = FastEngine(target, 5.0)
        conn = engine.new_client()
        try:
            task = asyncio.create_task(engine.send(conn, req("/trickle")))
            # Cancelled mid-response: its headers are in, its body is still coming.
            await until(lambda: conn._proto is not None and conn._proto._hdone)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return engine, await engine.send(conn, req("/fast"))
        finally:
            await conn.aclose()

    engine, after = run(go())
    assert after == Outcome(200, 2, None)
    assert (engine.connects, engine.reconnects) == (2, 1)


@pytest.mark.parametrize("engine_name", ["fast", "httpx"])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_keep_alive_off_opens_a_connection_per_request(run: Runner, engine_name: str,
                                                       keep_alive: bool) -> None:
    import uvicorn

    from lab.load.engines import make_engine

    app = _PeerRecorder()

    async def go() -> tuple[list[Outcome], list[int]]:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off", loop="none")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        for _ in range(500):  # up to 5 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        engine = make_engine(engine_name, f"http://127.0.0.1:{port}", 5.0, keep_alive)
        client = engine.new_client()
        outs, open_after = [], []
        try:
            expected = 1 if keep_alive else 0
            for _ in range(5):
                outs.append(await engine.send(client, req("/")))
                # Kept open, or closed once its response arrived (waited for, up to 5 s).
                with contextlib.suppress(AssertionError):
                    await until(lambda: _established_to(port) == expected, within_s=5)
                open_after.append(_established_to(port))
        finally:
            await client.aclose()  # type: ignore[attr-defined]
            server.should_exit = True
            await serving
        return outs, open_after

    outs, open_after = run(go())
    assert outs == [Outcome(200, 2, None)] * 5
    ports = [port for _host, port in app.peers]
    if keep_alive:
        assert len(set(ports)) == 1  # one connection, reused
        assert open_after == [1] * 5
    else:
        assert len(set(ports)) == 5  # a new connection (a new client port) per request
        assert open_after == [0] * 5  # each closed once its response arrived
