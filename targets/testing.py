"""Test target: small endpoints with precise, misbehaving-on-purpose behaviour.

The lab's own tests drive this app to check how the load generator and the target
manager cope with stalls (coordinated omission), slow bodies (timeouts), error
statuses, chunked bodies, closed connections, a target that crashes midway, and one
that never starts or never becomes ready. It starts in milliseconds.

Environment, read at startup:

- ``STALL_AT_S`` / ``STALL_FOR_S`` (default 1.0): ``/stall`` requests that arrive
  in the window ``[STALL_AT_S, STALL_AT_S + STALL_FOR_S)`` seconds after startup are
  held until the window ends.
- ``TRICKLE_EVERY_S`` (default 0.5): gap between the bytes of ``/trickle``.
- ``CRASH_AFTER_REQUESTS``: ``/crash-after`` kills the process (exit code 3) on the
  request after this many.
- ``FAIL_STARTUP=1``: the lifespan raises, so the server never starts.
- ``READY_NEVER=1``: ``/health`` answers 503 forever.

``/fast`` and ``/redirect/{n}`` count the HTTP version of their requests (``/stats``:
``http2_requests``, ``http1_requests``); served by hypercorn they answer HTTP/2 too.

Run: ``uvicorn targets.testing:app --port 8000`` (HTTP/1.1), or
``hypercorn targets.testing:app --bind 127.0.0.1:8000`` (HTTP/1.1 and HTTP/2, h2c too).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from targets.statsport import serve_stats

TRICKLE_BYTES = 20
CHUNKS = 3
CHUNK_SIZE = 1000


@dataclass
class TargetState:
    """Config and counters of one running app."""

    started: float
    stall_at_s: float | None
    stall_for_s: float
    trickle_every_s: float
    crash_after: int | None
    ready_never: bool
    fast_count: int = 0
    stall_count: int = 0
    crash_count: int = 0
    services_count: int = 0
    block_count: int = 0
    sleeping: int = 0
    http2_count: int = 0
    """``/fast`` and ``/redirect`` requests that came over HTTP/2 (served by hypercorn)."""
    http1_count: int = 0
    """``/fast`` and ``/redirect`` requests that came over HTTP/1.x."""
    redirect_count: int = 0


def _float_env(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, TargetState]]:
    """Read the environment; FAIL_STARTUP=1 makes startup fail on purpose."""
    if os.environ.get("FAIL_STARTUP") == "1":
        raise RuntimeError("testing target: startup failed on purpose (FAIL_STARTUP=1)")
    crash_raw = os.environ.get("CRASH_AFTER_REQUESTS")
    state = TargetState(
        started=time.monotonic(),
        stall_at_s=_float_env("STALL_AT_S", None),
        stall_for_s=_float_env("STALL_FOR_S", 1.0) or 0.0,
        trickle_every_s=_float_env("TRICKLE_EVERY_S", 0.5) or 0.0,
        crash_after=int(crash_raw) if crash_raw else None,
        ready_never=os.environ.get("READY_NEVER") == "1",
    )
    with serve_stats(lambda: _stats_of(state)):
        yield {"testing": state}


def _state(request: Request) -> TargetState:
    return request.state.testing


async def health(request: Request) -> Response:
    if _state(request).ready_never:
        return PlainTextResponse("never ready", status_code=503)
    return PlainTextResponse("ok")


def _count_version(request: Request) -> TargetState:
    state = _state(request)
    if request.scope.get("http_version") == "2":
        state.http2_count += 1
    else:
        state.http1_count += 1
    return state


async def fast(request: Request) -> Response:
    _count_version(request).fast_count += 1
    return PlainTextResponse("ok")


async def redirect(request: Request) -> Response:
    """302 to ``/redirect/{n - 1}``, and from ``/redirect/1`` to ``/fast``: a chain of
    ``n`` redirects before the final response."""
    _count_version(request).redirect_count += 1
    n = int(request.path_params["n"])
    return Response(status_code=302, headers={"Location": f"/redirect/{n - 1}" if n > 1 else "/fast"})


async def stall(request: Request) -> Response:
    """Immediate, except during the stall window, when arrivals wait for its end.

    A closed-model client stuck behind the stall sends nothing meanwhile, so its
    latencies hide the stall (coordinated omission); an open-model client keeps its
    schedule and measures from the intended send time, so the stall shows.
    """
    state = _state(request)
    state.stall_count += 1
    if state.stall_at_s is not None:
        elapsed = time.monotonic() - state.started
        window_end = state.stall_at_s + state.stall_for_s
        if state.stall_at_s <= elapsed < window_end:
            await asyncio.sleep(window_end - elapsed)
    return PlainTextResponse("ok")


async def sleep(request: Request) -> Response:
    """Answers after ``ms`` milliseconds (asyncio.sleep): a fixed service time."""
    state = _state(request)
    state.sleeping += 1
    try:
        await asyncio.sleep(int(request.path_params["ms"]) / 1000)
    finally:
        state.sleeping -= 1
    return PlainTextResponse("ok")


async def block(request: Request) -> Response:
    """Holds the event loop for ``ms`` milliseconds (``time.sleep`` in an async handler),
    as CPU-bound work inline does: the app answers nothing else meanwhile."""
    state = _state(request)
    state.block_count += 1
    time.sleep(int(request.path_params["ms"]) / 1000)  # noqa: ASYNC251 - blocking is the point
    return PlainTextResponse("ok")


async def trickle(request: Request) -> Response:
    """Headers at once, then one body byte every TRICKLE_EVERY_S (20 bytes in all)."""
    every = _state(request).trickle_every_s

    async def body() -> AsyncIterator[bytes]:
        for _ in range(TRICKLE_BYTES):
            await asyncio.sleep(every)
            yield b"."

    return StreamingResponse(body(), media_type="text/plain")


async def status(request: Request) -> Response:
    """An empty response with the status code in the path (200..599)."""
    try:
        code = int(request.path_params["code"])
    except ValueError:
        code = 0
    if not 200 <= code <= 599:
        # 1xx are not final responses; anything else is not a status at all.
        return PlainTextResponse("status must be 200..599", status_code=400)
    return Response(status_code=code)


async def chunked(request: Request) -> Response:
    """Exactly 3 chunks of 1000 bytes, no Content-Length (Transfer-Encoding: chunked)."""

    async def body() -> AsyncIterator[bytes]:
        for i in range(CHUNKS):
            yield bytes([ord("a") + i]) * CHUNK_SIZE

    return StreamingResponse(body(), media_type="application/octet-stream")


async def close(request: Request) -> Response:
    """Asks the client to drop the connection; uvicorn closes it after responding."""
    return PlainTextResponse("closed", headers={"Connection": "close"})


async def crash_after(request: Request) -> Response:
    """Counts requests; past CRASH_AFTER_REQUESTS the process dies without cleanup."""
    state = _state(request)
    state.crash_count += 1
    if state.crash_after is not None and state.crash_count > state.crash_after:
        # os._exit skips uvicorn's shutdown, like a segfault or OOM kill would.
        os._exit(3)
    return JSONResponse({"count": state.crash_count})


async def stats(request: Request) -> Response:
    """Fake cache counters (/fast = hits, /stall = misses) so tests can check stats reads,
    a ``requests`` counter, gauges and info (see the README's "Target stats"); also
    served on ``LAB_STATS_PORT``."""
    return JSONResponse(_stats_of(_state(request)))


def _stats_of(state: TargetState) -> dict[str, object]:
    # Each counter read once: another thread may read while the loop counts.
    fast, stall, services, blocks = (state.fast_count, state.stall_count, state.services_count,
                                     state.block_count)
    return {
        "cache_hits": fast, "cache_misses": stall,
        "requests": fast + stall + services + blocks,
        "services_calls": 3 * services,
        "http2_requests": state.http2_count, "http1_requests": state.http1_count,
        "redirects": state.redirect_count,
        "gauges": {"uptime_s": round(time.monotonic() - state.started, 3),
                   "fast_total": fast, "in_flight": state.sleeping},
        "info": {"redis": "yes" if os.environ.get("REDIS_URL") else "no",
                 "database": "yes" if os.environ.get("DATABASE_URL") else "no"},
    }


async def services(request: Request) -> Response:
    """Uses every backing service the lab passed in (REDIS_URL, DATABASE_URL,
    DOWNSTREAM_URL): 200 with what each answered, 500 naming the first one missing."""
    state = _state(request)
    state.services_count += 1
    out: dict[str, object] = {}
    redis_url = os.environ.get("REDIS_URL")
    db_url = os.environ.get("DATABASE_URL")
    downstream = os.environ.get("DOWNSTREAM_URL")
    if not (redis_url and db_url and downstream):
        return JSONResponse({"missing": [n for n, v in (("REDIS_URL", redis_url),
                             ("DATABASE_URL", db_url), ("DOWNSTREAM_URL", downstream)) if not v]},
                            status_code=500)
    import httpx
    import psycopg
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    try:
        await client.incr("lab-test-counter")
        out["redis"] = int(await client.get("lab-test-counter") or 0)
    finally:
        await client.aclose()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("select 41 + 1")
        out["postgres"] = (await cur.fetchone())[0]
    async with httpx.AsyncClient(trust_env=False) as http:
        out["downstream"] = (await http.get(downstream + "/fast")).status_code
    return JSONResponse(out)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/fast", fast),
        Route("/redirect/{n:int}", redirect),
        Route("/stall", stall),
        Route("/sleep/{ms:int}", sleep),
        Route("/block/{ms:int}", block),
        Route("/trickle", trickle),
        Route("/status/{code}", status),
        Route("/chunked", chunked),
        Route("/close", close),
        Route("/crash-after", crash_after),
        Route("/stats", stats),
        Route("/services", services),
    ],
    lifespan=lifespan,
)
