"""Servers for end-to-end tests: an ASGI app served by uvicorn in the test's own event loop
(so the test reads what it recorded), and a server command run as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from tests.conftest import REPO


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) until the block ends.

    Yields:
        The base URL, ``http://127.0.0.1:PORT``.
    """
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", interface="asgi3", loop="none"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "the in-process server did not start"
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


@contextlib.contextmanager
def external_server(argv: list[str], port: int, env: dict[str, str] | None = None,
                    timeout_s: float = 30.0) -> Iterator[None]:
    """Run ``argv`` (a server that will listen on 127.0.0.1:``port``) from the repository
    root until the block ends, entering the block once the port accepts connections;
    the server is ended (SIGTERM, then SIGKILL) even when the block fails."""
    import socket

    proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, f"{argv[:4]} exited with code {proc.returncode}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, f"{argv[:4]} did not listen on {port} in {timeout_s}s"
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
