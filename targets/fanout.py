"""A page that needs three downstream calls: the fan-out experiment's two apps.

``downstream`` is a stand-in for three backend services (``/svc/profile``,
``/svc/orders``, ``/svc/recommendations``): each answers after a fixed latency of
``DOWNSTREAM_LATENCY_MS`` milliseconds (an ``asyncio.sleep``: waiting on I/O, no CPU).

``app`` is the service under test. ``GET /page`` calls the three downstream services and
combines their answers. ``FANOUT`` says how:

- ``sequential``: one call after another, ``await``-ing each before the next. The
  latency is the *sum* of the three (≈ 3 × 30 ms).
- ``concurrent``: all three at once with ``asyncio.gather``. The latency is the *slowest*
  of the three (≈ 30 ms), although the same three calls are made.

The calls go through one shared ``httpx.AsyncClient`` made at startup (a pool of
keep-alive connections), so neither variant pays for connection setup per call. The
downstream's address comes from ``DOWNSTREAM_URL`` (the lab sets it when it starts the
downstream as ``[[services.apps]] name = "downstream"``).

``GET /stats`` (on either app) returns counters (``requests``, ``downstream_calls``) and
gauges (``in_flight``; on ``app`` also ``downstream_in_flight``, the downstream calls
outstanding right now). A page's counters are counted together when it is answered (the
page, the calls it made, the calls that failed), so a reading never holds a page without
its calls or calls without their page, and downstream calls per page over any window
are exactly 3 when every call succeeded. Both apps also answer ``/stats`` on
``LAB_STATS_PORT`` (``targets.statsport``).

Run by hand::

    uvicorn targets.fanout:downstream --port 9000
    DOWNSTREAM_URL=http://127.0.0.1:9000 FANOUT=concurrent uvicorn targets.fanout:app --port 8000
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import Counters, serve_stats

SERVICES = ("profile", "orders", "recommendations")
"""The three downstream services one page needs."""


# ----------------------------------------------------------------------- downstream


@dataclass
class DownstreamState:
    latency_s: float
    requests: int = 0
    in_flight: int = 0

    def stats(self) -> dict[str, Any]:
        """The ``/stats`` figures (read from any thread)."""
        return {
            "requests": self.requests,
            "gauges": {"in_flight": self.in_flight},
            "info": {"latency_ms": f"{self.latency_s * 1000:g}"},
        }


@contextlib.asynccontextmanager
async def downstream_lifespan(app: Starlette) -> AsyncIterator[dict[str, DownstreamState]]:
    raw = os.environ.get("DOWNSTREAM_LATENCY_MS", "30")
    try:
        latency_ms = float(raw)
        if latency_ms < 0:
            raise ValueError
    except ValueError:
        print(f"downstream: DOWNSTREAM_LATENCY_MS must be a number >= 0, got {raw!r}",
              file=sys.stderr, flush=True)
        raise
    state = DownstreamState(latency_s=latency_ms / 1000.0)
    with serve_stats(state.stats):
        yield {"downstream": state}


async def service(request: Request) -> Response:
    """One downstream service: a fixed latency, then a small JSON answer."""
    state: DownstreamState = request.state.downstream
    name = request.path_params["name"]
    state.requests += 1
    state.in_flight += 1
    try:
        await asyncio.sleep(state.latency_s)
    finally:
        state.in_flight -= 1
    return JSONResponse({"service": name, "items": [f"{name}-{i}" for i in range(3)]})


async def downstream_stats(request: Request) -> Response:
    state: DownstreamState = request.state.downstream
    return JSONResponse(state.stats())


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


downstream = Starlette(
    routes=[
        Route("/svc/{name}", service),
        Route("/health", health),
        Route("/stats", downstream_stats),
    ],
    lifespan=downstream_lifespan,
)


# ---------------------------------------------------------------- the calling service


@dataclass
class FanoutState:
    mode: str
    client: httpx.AsyncClient
    counters: Counters = field(
        default_factory=lambda: Counters("requests", "downstream_calls", "downstream_errors"))
    """Pages answered, and the downstream calls they made and saw fail."""
    in_flight: int = 0
    downstream_in_flight: int = 0

    def stats(self) -> dict[str, Any]:
        """The ``/stats`` figures (read from any thread)."""
        return {
            **self.counters.snapshot(),
            "gauges": {"in_flight": self.in_flight, "downstream_in_flight": self.downstream_in_flight},
            "info": {"fanout": self.mode},
        }


@dataclass
class PageCalls:
    """The downstream calls of one page so far."""

    made: int = 0
    failed: int = 0


def read_mode(env: dict[str, str] | None = None) -> str:
    """``FANOUT`` from the environment; ValueError names the allowed values."""
    mode = (os.environ if env is None else env).get("FANOUT", "sequential").strip().lower()
    if mode not in ("sequential", "concurrent"):
        raise ValueError(f"FANOUT must be 'sequential' or 'concurrent', got {mode!r}")
    return mode


def make_app(transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The calling service. ``transport`` replaces the network in unit tests (e.g. an
    ``httpx.ASGITransport`` around ``downstream``); the lab's run uses DOWNSTREAM_URL."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, FanoutState]]:
        try:
            mode = read_mode()
            base_url = os.environ.get("DOWNSTREAM_URL", "http://downstream" if transport else "")
            if not base_url:
                raise ValueError("DOWNSTREAM_URL is not set (the downstream service's base URL, "
                                 "e.g. http://127.0.0.1:9000)")
        except ValueError as exc:
            print(f"fanout: invalid configuration: {exc}", file=sys.stderr, flush=True)
            raise
        # One client for the life of the process: its pool keeps connections open between
        # pages. No pool limit: the pool must never be the bottleneck being measured.
        client = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=10.0, trust_env=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=512),
        )
        async with client:
            state = FanoutState(mode=mode, client=client)
            with serve_stats(state.stats):
                yield {"fanout": state}

    return Starlette(
        routes=[Route("/page", page), Route("/health", health), Route("/stats", fanout_stats)],
        lifespan=lifespan,
    )


async def call(state: FanoutState, name: str, calls: PageCalls) -> Any:
    calls.made += 1
    state.downstream_in_flight += 1
    try:
        resp = await state.client.get(f"/svc/{name}")
        resp.raise_for_status()
        return resp.json()
    except httpx.HTTPError:
        calls.failed += 1
        raise
    finally:
        state.downstream_in_flight -= 1


async def page(request: Request) -> Response:
    """One page built from the three downstream answers."""
    state: FanoutState = request.state.fanout
    state.in_flight += 1
    calls = PageCalls()
    started = time.perf_counter()
    try:
        if state.mode == "concurrent":
            # Every call ends before the page does (none is left running when one fails),
            # so the page counts all three.
            answers = await asyncio.gather(*(call(state, name, calls) for name in SERVICES),
                                           return_exceptions=True)
            failed = next((a for a in answers if isinstance(a, BaseException)), None)
            if failed is not None:
                raise failed
            parts = list(answers)
        else:
            parts = [await call(state, name, calls) for name in SERVICES]
    except httpx.HTTPError as exc:
        return JSONResponse({"error": f"downstream failed: {type(exc).__name__}"}, status_code=502)
    finally:
        state.in_flight -= 1
        state.counters.add(requests=1, downstream_calls=calls.made, downstream_errors=calls.failed)
    return JSONResponse({
        "mode": state.mode,
        "parts": parts,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
    })


async def fanout_stats(request: Request) -> Response:
    state: FanoutState = request.state.fanout
    return JSONResponse(state.stats())


app = make_app()
