"""Sample targets in the test's own process: no sockets, no subprocesses.

The targets read their environment in their lifespan, so a test sets env vars with
monkeypatch and then starts the app with ``running()``, which speaks the ASGI lifespan
protocol the way uvicorn does (including lifespan state) and hands back an httpx
client over ``ASGITransport``. (Starlette's TestClient would do too, but with httpx it
now emits a deprecation warning.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp


@contextlib.asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's startup, yield a client, run its shutdown; startup failure raises."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    lifespan = asyncio.create_task(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    message = await from_app.get()
    if message["type"] == "lifespan.startup.failed":
        with contextlib.suppress(BaseException):
            await lifespan  # the app re-raises what failed; the message carries it
        raise RuntimeError(message.get("message", "startup failed"))

    async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Servers give every request a shallow copy of the lifespan state.
        await app({**scope, "state": dict(state)}, receive, send)

    transport = httpx.ASGITransport(app=with_state)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://target") as client:
            yield client
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await lifespan
