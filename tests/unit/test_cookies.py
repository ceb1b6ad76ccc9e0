"""Per-VU cookies: the fast engine's jar, and both client engines against a raw asyncio
server in this process that sets cookies and records the ``Cookie`` headers it gets."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from lab.load.cookies import CookieJar, set_cookie_values
from lab.load.engines import make_engine
from lab.load.workload import Request

ORIGIN = "http://127.0.0.1:8000"


def _get(path: str, headers: dict[str, str] | None = None) -> Request:
    return Request("GET", path, headers, None, frozenset(), True)


def test_set_cookie_values_reads_every_line_whatever_its_case() -> None:
    block = (b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\ncontent-length: 0\r\n"
             b"SET-COOKIE:b=2\r\nx-set-cookie: c=3")
    assert set_cookie_values(block) == ["a=1; Path=/", "b=2"]


def test_jar_sends_back_what_was_set_and_honours_path_and_deletion() -> None:
    jar = CookieJar(ORIGIN)
    assert jar.empty and jar.header_line("/") is None
    jar.extract(["session=abc; Path=/", "cart=7; Path=/shop"], "/login")
    assert jar.header_line("/work") == b"Cookie: session=abc\r\n"
    assert jar.header_line("/shop/item?id=1") == b"Cookie: cart=7; session=abc\r\n"
    assert jar.header_line("/shopping") == b"Cookie: session=abc\r\n"  # not under /shop
    jar.extract(["session=; Max-Age=0; Path=/"], "/work")
    assert jar.header_line("/work") is None and len(jar) == 1
    jar.extract(["cart=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/shop"], "/shop")
    assert jar.empty and jar.header_line("/shop") is None


def test_jar_forgets_a_cookie_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    jar = CookieJar(ORIGIN)
    jar.extract(["short=1; Max-Age=60; Path=/", "long=2; Path=/"], "/")
    assert jar.header_line("/") == b"Cookie: short=1; long=2\r\n"
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    assert jar.header_line("/") == b"Cookie: long=2\r\n"


def test_jar_refuses_a_cookie_for_another_domain() -> None:
    jar = CookieJar(ORIGIN)
    jar.extract(["x=1; Domain=example.com; Path=/"], "/")
    assert jar.empty


async def _cookie_server() -> tuple[asyncio.Server, str, list[tuple[str, str | None]]]:
    """A server that answers every request with the ``Set-Cookie`` lines named in its
    query (``/p?set=a%3D1``), recording (path, Cookie header) per request."""
    seen: list[tuple[str, str | None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from urllib.parse import parse_qs, urlsplit

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                cookie = re.search(rb"(?i)\r\ncookie: *([^\r]*)", head)
                seen.append((target, cookie.group(1).decode() if cookie else None))
                sets = parse_qs(urlsplit(target).query).get("set", [])
                lines = b"".join(f"Set-Cookie: {value}\r\n".encode() for value in sets)
                writer.write(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


@pytest.mark.parametrize("engine_name", ["fast", "httpx"])
async def test_each_client_keeps_its_own_cookies(engine_name: str) -> None:
    server, url, seen = await _cookie_server()
    engine = make_engine(engine_name, url, 5.0)
    one, two = engine.new_client(), engine.new_client()
    try:
        for client, path in ((one, "/login?set=session%3Done%3B%20Path%3D%2F"),
                             (two, "/login?set=session%3Dtwo%3B%20Path%3D%2F"),
                             (one, "/work"), (two, "/work"),
                             (one, "/work?set=session%3D%3B%20Max-Age%3D0%3B%20Path%3D%2F"),
                             (one, "/work"), (two, "/work", ),
                             (two, "/own")):
            headers = {"Cookie": "mine=1"} if path == "/own" else None
            assert (await engine.send(client, _get(path, headers))).status == 200
    finally:
        for client in (one, two):
            await client.aclose()
        server.close()
        await server.wait_closed()
    assert [cookie for _, cookie in seen] == [
        None, None,
        "session=one", "session=two",
        "session=one",  # the response to this one deletes it
        None, "session=two",
        "mine=1",  # a request's own Cookie header is sent instead of the jar's
    ]


@pytest.mark.parametrize("engine_name", ["fast", "httpx"])
async def test_with_cookies_off_no_client_keeps_any(engine_name: str) -> None:
    server, url, seen = await _cookie_server()
    engine = make_engine(engine_name, url, 5.0, cookies=False)
    client = engine.new_client()
    try:
        for path in ("/login?set=session%3Done%3B%20Path%3D%2F", "/work"):
            assert (await engine.send(client, _get(path))).status == 200
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert [cookie for _, cookie in seen] == [None, None]
