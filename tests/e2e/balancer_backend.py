"""A replica for the balancer tests: a plain ASGI app served by uvicorn.

Every path but ``/health`` answers after ``DELAY_MS`` milliseconds (``asyncio.sleep``:
a fixed service time with unlimited concurrency, so one replica can be made 5× slower
than another of the same app). The body is ``"PORT BYTES"``: the port this replica
listens on (which replica answered) and how many request-body bytes it received (so a
test can tell nginx passed a large body on whole).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

DELAY_S = float(os.environ.get("DELAY_MS", "0")) / 1000

Message = MutableMapping[str, Any]


async def app(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    received = 0
    while True:
        message = await receive()
        received += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] != "/health":
        await asyncio.sleep(DELAY_S)
    body = f"{scope['server'][1]} {received}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
