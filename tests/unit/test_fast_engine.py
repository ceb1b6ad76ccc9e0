"""The fast client engine against small raw asyncio servers in this process, on asyncio and
on uvloop: servers that misbehave in the ways uvicorn never does (closing idle keep-alive
connections, resetting mid-body, answering without a Content-Length, sending 100 Continue
or garbage), and the request bytes on the wire.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from lab.load.fast_engine import FastEngine
from lab.load.outcome import Outcome
from lab.load.workload import Request

_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def req(path: str, method: str = "GET", body: bytes | None = None,
        headers: dict[str, str] | None = None, expect: frozenset[int] = frozenset()) -> Request:
    return Request(method, path, headers, body, expect, method in _IDEMPOTENT)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a coroutine to completion on a fresh loop of the parametrised kind."""
    factory = None
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return _run


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    """Start a raw asyncio server on a free loopback port; returns it and its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One whole request (head and Content-Length body), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        return head + (await reader.readexactly(int(match.group(1))) if match else b"")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close(writer: asyncio.StreamWriter, how: str = "fin") -> None:
    if how == "rst":
        reset(writer)
        return
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


_HAVE_PROC_TCP = os.path.exists("/proc/net/tcp")


def _tcp_queues(local_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) in bytes of the IPv4 loopback socket bound to
    ``local_port``, from /proc/net/tcp; None when there is no such socket."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == f"0100007F:{local_port:04X}":
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


async def peer_has_read(writer: asyncio.StreamWriter) -> None:
    """Wait until every byte written to ``writer`` was read by the client at the other end
    (both in this process): nothing left in our send queue nor in the client's receive
    queue. An RST discards what the client has not read yet."""
    if not _HAVE_PROC_TCP:
        await asyncio.sleep(0.2)
        return
    own = writer.get_extra_info("sockname")[1]
    peer = writer.get_extra_info("peername")[1]
    await until(lambda: (_tcp_queues(own) or (0, 0))[0] == 0 and (_tcp_queues(peer) or (0, 0))[1] == 0)


async def exchange(base_url: str, *requests: Request, timeout_s: float = 5.0,
                   pause_s: float = 0.0) -> tuple[FastEngine, list[Outcome]]:
    """Send the requests in order on one client (pausing between them)."""
    engine = FastEngine(base_url, timeout_s)
    conn = engine.new_client()
    outcomes = []
    try:
        for i, r in enumerate(requests):
            if i and pause_s:
                await asyncio.sleep(pause_s)
            outcomes.append(await engine.send(conn, r))
    finally:
        await conn.aclose()
    return engine, outcomes


def test_refused_connection_is_a_connect_error(run: Runner) -> None:
    # A bound socket that does not listen: connecting to it is refused, and nobody else
    # can take the port meanwhile.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        engine, [out] = run(exchange(url, req("/")))
    assert out.error_class == "connect" and out.status is None
    assert "refused" in (out.message or "").lower()
    assert engine.connects == 0


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL])
def test_out_of_descriptors_or_ports_is_the_generators_error(code: int) -> None:
    async def go() -> Outcome:
        async def no_fds(*args: Any, **kwargs: Any) -> Any:
            raise OSError(code, os.strerror(code))

        asyncio.get_running_loop().create_connection = no_fds  # type: ignore[method-assign]
        return (await exchange("http://127.0.0.1:9", req("/")))[1][0]

    out = asyncio.run(go())
    assert out.error_class == "generator"


def test_only_plain_http_is_accepted() -> None:
    with pytest.raises(ValueError, match="plain http"):
        FastEngine("https://example.com", 1.0)


# -- against raw servers ----------------------------------------------------------------


def test_request_bytes_on_the_wire(run: Runner) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (got := await read_request(reader)) is not None:
            seen.append(got)
            writer.write(OK)
        await close(writer)

    async def go() -> tuple[str, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            _, outs = await exchange(url + "/api/", req("/items?id=3"),
                                     req("/items", "POST", b"hi", {"X-Trace": "1"}))
        return url, outs

    url, outs = run(go())
    host = url.removeprefix("http://")
    assert outs == [Outcome(200, 2, None)] * 2
    assert seen == [
        f"GET /api/items?id=3 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: scalability-lab\r\n"
        "Accept: */*\r\n\r\n".encode(),
        f"POST /api/items HTTP/1.1\r\nHost: {host}\r\nUser-Agent: scalability-lab\r\n"
        "Accept: */*\r\nX-Trace: 1\r\n"
        "Content-Length: 2\r\n\r\nhi".encode(),
    ]


def test_idle_close_noticed_before_reuse_just_reconnects(run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Keep-alive with a short idle timeout, like a server's keepalive_timeout.
        while True:
            try:
                got = await asyncio.wait_for(read_request(reader), 0.2)
            except TimeoutError:
                break
            if got is None:
                break
            writer.write(OK)
        await close(writer)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            engine = FastEngine(url, 5.0)
            conn = engine.new_client()
            try:
                outs = [await engine.send(conn, req("/"))]
                # The client has seen the server's idle close by the time it sends again.
                await until(lambda: conn._proto is None or conn._proto.closed)
                outs.append(await engine.send(conn, req("/", "POST")))
            finally:
                await conn.aclose()
            return engine, outs

    engine, outs = run(go())
    assert outs == [Outcome(200, 2, None)] * 2  # even the POST: it was never sent on the dead one
    assert (engine.connects, engine.reconnects, engine.retries) == (2, 1, 0)


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_idle_close_racing_a_request_is_retried_once_if_idempotent(run: Runner, how: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers the first request of each connection; the second arrives just as the
        # server's idle timeout closes the connection, and gets no answer.
        if await read_request(reader) is not None:
            writer.write(OK)
            await read_request(reader)
        await close(writer, how)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/"), req("/"), req("/", "POST"))

    engine, outs = run(go())
    assert outs[:2] == [Outcome(200, 2, None)] * 2
    assert outs[2].error_class == "reset" and outs[2].status is None  # POST: not retried
    assert (engine.connects, engine.reconnects, engine.retries) == (2, 1, 1)


def test_a_fresh_connection_closed_without_response_is_not_retried(run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await close(writer)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/"))

    engine, [out] = run(go())
    assert out.error_class == "reset"
    assert (engine.connects, engine.retries) == (1, 0)


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_close_mid_body_is_a_reset(run: Runner, how: str, framing: str) -> None:
    head = {"length": b"Content-Length: 100\r\n\r\n" + b"x" * 10,
            "chunked": b"Transfer-Encoding: chunked\r\n\r\na\r\n" + b"x" * 10 + b"\r\n"}[framing]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + head)
        await peer_has_read(writer)  # the partial body, before the close
        await close(writer, how)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/"))

    engine, [out] = run(go())
    assert out.error_class == "reset" and out.status is None
    assert out.nbytes == 10
    assert engine.retries == 0  # response bytes arrived: never an idle close


@pytest.mark.parametrize("status_line", [b"HTTP/1.0 200 OK\r\n",
                                         b"HTTP/1.1 200 OK\r\nConnection: close\r\n"])
def test_body_without_length_ends_at_close(run: Runner, status_line: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(status_line + b"Content-Type: text/plain\r\n\r\nhello ")
        await asyncio.sleep(0.05)
        writer.write(b"world")
        await close(writer)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/"), req("/"))

    engine, outs = run(go())
    assert outs == [Outcome(200, 11, None)] * 2
    assert (engine.connects, engine.retries) == (2, 0)


@pytest.mark.parametrize("split", [False, True])
def test_informational_responses_are_skipped(run: Runner, split: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if split:
                await asyncio.sleep(0.02)
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc")
        await close(writer)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/", "POST", b"x"), req("/"))

    engine, outs = run(go())
    assert outs == [Outcome(201, 3, None)] * 2
    assert engine.connects == 1


def test_garbage_is_a_reset(run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await asyncio.sleep(0.5)
        await close(writer)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/"))

    _, [out] = run(go())
    assert out.error_class == "reset"
    assert "malformed" in (out.message or "")


def test_bytes_after_the_response_drop_the_connection(run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(OK + OK)  # one response too many: the stream is out of sync
        await close(writer)

    async def go() -> tuple[FastEngine, list[Outcome]]:
        server, url = await serve(handler)
        async with server:
            return await exchange(url, req("/"), req("/"), pause_s=0.05)

    engine, outs = run(go())
    assert outs == [Outcome(200, 2, None)] * 2
    assert (engine.connects, engine.retries) == (2, 0)
