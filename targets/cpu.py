"""CPU-bound and I/O-bound endpoints: the horizontal- and vertical-scaling experiments' target.

- ``GET /cpu`` does pure-Python arithmetic inline in an ``async`` handler, about 5–6 ms
  of one core per request (``CPU_ITERATIONS``). It holds the GIL the whole time, so one
  process serves one such request at a time whatever the number of cores; only more
  processes (``uvicorn --workers N``) on more cores serve more.
- ``GET /io/async`` waits ``IO_MS`` (default 50 ms) with ``await asyncio.sleep``: the
  event loop serves every other request meanwhile, so concurrency is unbounded.
- ``GET /io/blocking`` waits as long with ``time.sleep`` in a plain ``def`` endpoint.
  Starlette runs such endpoints in anyio's worker-thread pool, whose limiter has
  ``THREADPOOL_TOKENS`` tokens (anyio's default is 40): at most that many requests
  wait at once, the rest queue for a token. Throughput caps at tokens / IO_MS.

Counters work under several worker processes too: each process keeps its counters in
a small memory-mapped file (one per process, in a temp directory named after the
server's pid: uvicorn's supervisor, or the single process), and ``/stats`` sums the
files of the processes still alive, so ``requests`` counts what the whole server did,
whichever worker answers ``/stats``. ``/health`` answers 503 until every worker
process is up (the number is read from uvicorn's ``--workers``), so the load does not
start with all its keep-alive connections on the first worker.

``GET /stats``::

    {"requests": n,
     "gauges": {"handlers_running": n, "workers": n},
     "info": {"requests_by_worker": "512/498", "threadpool_tokens": "40", ...}}

``handlers_running`` is the number of requests inside a handler right now, summed over
workers: under ``/io/blocking`` it stops at the thread-pool limit, under ``/io/async``
it is about the number of virtual users. ``workers`` counts the live worker processes;
``requests_by_worker`` shows how evenly the kernel spread the connections over them
(counts since each process started).

Configuration, read from the environment at startup:

- ``CPU_ITERATIONS`` loop iterations of ``/cpu`` (default 40000, ~5.5 ms here)
- ``IO_MS`` simulated I/O wait of the ``/io/*`` endpoints, ms (default 50)
- ``THREADPOOL_TOKENS`` anyio thread-pool limit for sync endpoints (default 40)

Run: ``uvicorn targets.cpu:app --workers 2 --port 8000``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats
from targets.workers import SharedCounters, server_layout

COUNTERS = ("requests",)
LEVELS = ("handlers_running",)
_FIELDS = COUNTERS + LEVELS
_INDEX = {name: i for i, name in enumerate(_FIELDS)}


@dataclass(frozen=True)
class CpuConfig:
    """Settings read from the environment when the app starts."""

    cpu_iterations: int = 40_000
    io_ms: float = 50.0
    threadpool_tokens: int = 40

    @classmethod
    def from_env(cls) -> CpuConfig:
        """Read and validate the environment; raise ValueError with a readable message."""

        def number(name: str, default: str, kind: type) -> float:
            raw = os.environ.get(name, "").strip() or default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {raw!r}")
            return value

        return cls(
            cpu_iterations=int(number("CPU_ITERATIONS", "40000", int)),
            io_ms=number("IO_MS", "50", float),
            threadpool_tokens=int(number("THREADPOOL_TOKENS", "40", int)),
        )


def burn(iterations: int) -> int:
    """Pure-Python integer arithmetic (an LCG): CPU work that holds the GIL throughout.

    A stand-in for what a real CPU-bound request does in Python (template rendering,
    JSON shaping, parsing); deterministic, so every request costs the same.
    """
    acc = 0
    x = 12345
    for i in range(iterations):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        acc ^= x >> (i & 7)
    return acc


@dataclass
class CpuApp:
    """Everything one running worker process owns."""

    config: CpuConfig
    counters: SharedCounters
    workers: int  # worker processes of this server, this one included

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures, summed over the live worker processes (read from any
        thread; also served on ``LAB_STATS_PORT``, ``targets.statsport``)."""
        per_pid = self.counters.read_all()
        totals = [sum(values[i] for values in per_pid.values()) for i in range(len(_FIELDS))]
        body: dict[str, object] = {name: totals[_INDEX[name]] for name in COUNTERS}
        body["gauges"] = {
            "handlers_running": totals[_INDEX["handlers_running"]],
            "workers": len(per_pid),
        }
        by_worker = sorted((values[_INDEX["requests"]] for values in per_pid.values()), reverse=True)
        body["info"] = {
            "requests_by_worker": "/".join(str(n) for n in by_worker),
            "threadpool_tokens": str(self.config.threadpool_tokens),
            "cpu_iterations": str(self.config.cpu_iterations),
            "io_ms": f"{self.config.io_ms:g}",
        }
        return body


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, CpuApp]]:
    """Read the config and size the thread pool; a bad setting fails startup."""
    try:
        config = CpuConfig.from_env()
    except ValueError as exc:
        print(f"cpu: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    # The limiter Starlette's run_in_threadpool uses for sync endpoints (one per loop).
    anyio.to_thread.current_default_thread_limiter().total_tokens = config.threadpool_tokens
    server_pid, workers = server_layout()
    state = CpuApp(config=config, counters=SharedCounters(server_pid, _FIELDS), workers=workers)
    try:
        with serve_stats(state.stats):
            yield {"cpu": state}
    finally:
        state.counters.close()


def _app(request: Request) -> CpuApp:
    return request.state.cpu


async def cpu(request: Request) -> Response:
    """CPU-bound: pure-Python work inline; blocks this worker's event loop meanwhile."""
    state = _app(request)
    with state.counters.request():
        result = burn(state.config.cpu_iterations)
    return PlainTextResponse(f"{result}\n")


async def io_async(request: Request) -> Response:
    """I/O-bound, async: the wait yields to the event loop, so waits overlap freely."""
    state = _app(request)
    with state.counters.request():
        await asyncio.sleep(state.config.io_ms / 1000)
    return PlainTextResponse("waited\n")


def io_blocking(request: Request) -> Response:
    """I/O-bound, blocking: a sync endpoint, run in the thread pool, holding a token."""
    state = _app(request)
    with state.counters.request():
        time.sleep(state.config.io_ms / 1000)
    return PlainTextResponse("waited\n")


async def health(request: Request) -> Response:
    """200 once every worker process of the server is up, 503 before.

    Without this the lab would start the load when the first of two workers answers,
    open every keep-alive connection to it, and the second worker would get none.
    """
    state = _app(request)
    up = len(state.counters.read_all())
    if up < state.workers:
        return PlainTextResponse(f"starting: {up} of {state.workers} worker processes up",
                                 status_code=503)
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    """Counters summed over every live worker process; per-worker split in ``info``."""
    return JSONResponse(_app(request).stats())


app = Starlette(
    routes=[
        Route("/cpu", cpu),
        Route("/io/async", io_async),
        Route("/io/blocking", io_blocking),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
