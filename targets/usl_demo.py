"""usl-demo target: a service whose contention and coherency costs are knobs.

Each request first waits ``USL_WORK_MS`` without using the CPU (I/O: the part that
overlaps perfectly between requests), then does ``USL_SERIAL_MS`` of CPU work on the
single event loop, which no two requests can do at once (contention: the σ of the
Universal Scalability Law), plus ``USL_CROSSTALK_MS`` more for every other request in
flight (coherency: the cost of keeping each request consistent with all the others,
growing with N: the κ). With σ > 0 throughput flattens; with κ > 0 it peaks at some
N* and falls beyond it (N. J. Gunther, *Guerrilla Capacity Planning*, Springer 2007).

The CPU work is a busy loop on ``time.perf_counter`` so its length is exact at
sub-millisecond sizes, where a timer would round to the event loop's clock.

Environment (milliseconds): ``USL_WORK_MS`` (default 20), ``USL_SERIAL_MS`` (1.0),
``USL_CROSSTALK_MS`` (0.0). ``GET /work`` is the endpoint under load; ``/stats`` reports
``requests`` and the gauge ``in_flight``, also on ``LAB_STATS_PORT`` (``targets.statsport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats

WORK_S = float(os.environ.get("USL_WORK_MS", "20")) / 1000
SERIAL_S = float(os.environ.get("USL_SERIAL_MS", "1.0")) / 1000
CROSSTALK_S = float(os.environ.get("USL_CROSSTALK_MS", "0.0")) / 1000

_in_flight = 0
_requests = 0


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def work(request: Request) -> Response:
    global _in_flight, _requests
    _in_flight += 1
    try:
        await asyncio.sleep(WORK_S)
        # Blocking the loop on purpose: this is the part that serialises.
        _spin(SERIAL_S + CROSSTALK_S * (_in_flight - 1))
        _requests += 1
        return PlainTextResponse("done")
    finally:
        _in_flight -= 1


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def _stats() -> dict[str, object]:
    return {"requests": _requests, "gauges": {"in_flight": _in_flight},
            "info": {"work_ms": f"{WORK_S * 1000:g}", "serial_ms": f"{SERIAL_S * 1000:g}",
                     "crosstalk_ms": f"{CROSSTALK_S * 1000:g}"}}


async def stats(request: Request) -> Response:
    return JSONResponse(_stats())


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    with serve_stats(_stats):
        yield


app = Starlette(routes=[Route("/work", work), Route("/health", health), Route("/stats", stats)],
                lifespan=lifespan)
