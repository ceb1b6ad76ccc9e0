"""The activator: holds requests while a service scaled to zero starts a replica.

When no replica of a target is ready (``[autoscale] min_replicas = 0`` and the autoscaler
took the last one away), nginx sends every request here instead of answering 503. The
activator keeps each request waiting, counts it (the autoscaler reads ``waiting`` and
``arrived`` as the demand that wakes the target), and once the lab tells it a replica is
ready, sends the held requests on to it and answers with what it answered: the cold start
shows as latency, as with Knative's activator or KEDA's HTTP add-on, not as errors.

An ASGI app the lab serves with uvicorn in a process of its own, on a loopback port. The
lab steers it on two paths nothing else uses:

- ``PUT /__lab__/upstream`` with the body ``127.0.0.1:PORT`` (a ready replica) or empty
  (none): where held and new requests go;
- ``GET /__lab__/stats``: ``{"waiting": n, "arrived": n, "proxied": n, "timed_out": n}``
  (``arrived``, ``proxied`` and ``timed_out`` count since the start).

A request still held after ``ACTIVATOR_TIMEOUT_S`` (environment, seconds, default 30) is
answered ``504``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

CONTROL = "/__lab__"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-length"}


@dataclass
class _State:
    upstream: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0
    arrived: int = 0
    proxied: int = 0
    timed_out: int = 0
    timeout_s: float = 30.0
    client: httpx.AsyncClient | None = None


async def _set_upstream(request: Request) -> Response:
    state: _State = request.app.state.activator
    body = (await request.body()).decode().strip()
    state.upstream = body or None
    if state.upstream:
        state.ready.set()
    else:
        state.ready.clear()
    return PlainTextResponse("ok\n")


async def _stats(request: Request) -> Response:
    state: _State = request.app.state.activator
    return JSONResponse({"waiting": state.waiting, "arrived": state.arrived,
                         "proxied": state.proxied, "timed_out": state.timed_out,
                         "upstream": state.upstream})


async def _held(request: Request) -> Response:
    state: _State = request.app.state.activator
    state.arrived += 1
    state.waiting += 1
    try:
        try:
            await asyncio.wait_for(state.ready.wait(), state.timeout_s)
        except TimeoutError:
            state.timed_out += 1
            return PlainTextResponse("no replica became ready in time\n", status_code=504)
        upstream = state.upstream
    finally:
        state.waiting -= 1
    assert state.client is not None and upstream
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    url = f"http://{upstream}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    try:
        answer = await state.client.request(request.method, url, headers=headers,
                                            content=await request.body())
    except httpx.HTTPError as exc:
        return PlainTextResponse(f"the replica did not answer: {type(exc).__name__}\n", status_code=502)
    state.proxied += 1
    out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP
           and k.lower() != "content-encoding"}
    return Response(answer.content, status_code=answer.status_code, headers=out)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    state = _State(timeout_s=float(os.environ.get("ACTIVATOR_TIMEOUT_S", "30")))
    state.client = httpx.AsyncClient(timeout=state.timeout_s, trust_env=False)
    app.state.activator = state
    try:
        yield
    finally:
        await state.client.aclose()


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok\n")


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
app = Starlette(lifespan=_lifespan, routes=[
    Route(f"{CONTROL}/upstream", _set_upstream, methods=["PUT"]),
    Route(f"{CONTROL}/stats", _stats, methods=["GET"]),
    Route(f"{CONTROL}/health", _health, methods=["GET"]),
    Route("/{path:path}", _held, methods=_METHODS),
])
