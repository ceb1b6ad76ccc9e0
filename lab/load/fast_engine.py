"""The ``fast`` client engine: lean HTTP/1.1 over an asyncio Protocol, parsed by httptools.

httpx costs 0.4 to 1 ms of generator CPU per request; on a laptop that CPU is taken from
the target and distorts the experiment. For plain ``http://`` requests to a loopback
target this engine does the same job in about 7 µs of CPU on uvloop (9 to 30 µs on the
default asyncio loop; 50 connections against nginx, 2-core machine): one keep-alive
connection per client, no pipelining, requests encoded once and reused, responses parsed
by llhttp (through httptools, as uvicorn does) and counted, never stored. That is within
1 µs of a bare Protocol that does nothing but write and parse. It works on asyncio's
loops and on uvloop's; which one runs is the worker's choice (the event loop policy).

Costs avoided on purpose, per request (measured on the lab's 2-core machine):

- no ``asyncio.timeout`` (about 4 µs): each connection keeps one lazy timer that is
  re-armed only when it fires while a newer request is in flight, so a request costs
  one float store for its deadline;
- no header callbacks (about 0.35 µs for 4 headers): framing and keep-alive come from
  llhttp itself; the header bytes are only looked at in two rare cases, a close before
  the body ended (its framing decides between success and ``reset``) and a HEAD response
  without Content-Length (llhttp would wait for a body that never comes);
- one future per request and nothing else awaited on the hot path.

Cookies: with ``cookies`` on (the closed model), each client (one per VU) keeps its own
jar (``lab.load.cookies``); a response is looked at for ``Set-Cookie`` with one regular
expression over its header bytes (about 0.2 µs), and the jar is built only when one comes.

It lacks on purpose everything a loopback load test of plain HTTP/1.1 does not need:
TLS, HTTP/2, proxies, redirects, auth, decompression.
"""

from __future__ import annotations

import asyncio
import errno
import re
from urllib.parse import quote, urlsplit

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from lab.load.cookies import SET_COOKIE, CookieJar, set_cookie_values
from lab.load.outcome import GENERATOR_ERRNOS, Outcome, classify_exception, errno_of, status_class
from lab.load.workload import Request

USER_AGENT = "scalability-lab"

_ENCODED_CACHE_MAX = 256
"""Encoded requests kept per engine. Static requests (one ``Request`` object reused for
every send) always hit; parametrised paths make a new object per send and only churn
the cache, which is then cleared: re-encoding a few static requests is cheap."""

# A header block declares its body length (so a close before the end is a ``reset``)
# when it has a Content-Length or a chunked Transfer-Encoding (RFC 9112, section 6.3).
_FRAMED = re.compile(rb"\r\n(?:content-length[ \t]*:|transfer-encoding[ \t]*:[^\r\n]*chunked)",
                     re.IGNORECASE)
_CONN_CLOSE = re.compile(rb"\r\nconnection[ \t]*:[^\r\n]*close", re.IGNORECASE)
_CONN_KEEP_ALIVE = re.compile(rb"\r\nconnection[ \t]*:[^\r\n]*keep-alive", re.IGNORECASE)
_SAFE_PATH_CHARS = "/?&=%:;@!$'()*+,~#[]"


class _NoResponse(ConnectionError):
    """The server closed the connection before sending a single byte of the response."""


class _HeadDone(Exception):
    """Raised from a parser callback to stop parsing after a HEAD response's headers."""


def _final_header_block(raw: bytes) -> bytes:
    """The header block of the final response in ``raw`` (bytes as received), from its
    status line to its last header line's CRLF; informational (1xx) blocks are skipped."""
    pos = 0
    while True:
        end = raw.find(b"\r\n\r\n", pos)
        if end < 0:
            return raw[pos:]
        code = raw[pos + 9:pos + 12]  # "HTTP/1.1 200 …": the code is at a fixed offset
        if code[:1] == b"1" and code != b"101":
            pos = end + 4
            continue
        return raw[pos:end + 2]


def _body_ends_at_close(raw: bytes) -> bool:
    """Whether the final response's body lasts until the server closes (HTTP/1.0 style).

    True when its headers declare neither a Content-Length nor chunked encoding.
    """
    return _FRAMED.search(_final_header_block(raw)) is None


def _persists(raw: bytes) -> bool:
    """Whether the connection stays open after the final response, by its headers alone.

    For HEAD responses, whose framing headers do not apply: HTTP/1.1 persists unless
    ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``.
    """
    block = _final_header_block(raw)
    if _CONN_CLOSE.search(block):
        return False
    return block.startswith(b"HTTP/1.1") or _CONN_KEEP_ALIVE.search(block) is not None


class _Protocol(asyncio.Protocol):
    """One TCP connection: at most one request in flight, its response parsed as it arrives.

    ``request()`` writes the encoded request and returns a future that resolves to the
    final status code (the body byte count is in ``nbytes``) or fails with
    ``TimeoutError`` (deadline), ``_NoResponse`` (closed before any response byte) or
    ``ConnectionResetError`` (closed or broken mid-response, or an unparsable response).
    """

    __slots__ = ("_loop", "transport", "_parser", "_waiter", "nbytes", "_raw", "_hdone",
                 "_head", "_deadline", "_timer", "_timer_at", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self.nbytes = 0
        """Body bytes of the current response so far (after de-chunking)."""
        self._raw = b""  # bytes received until the headers were complete (see _body_ends_at_close)
        self._hdone = False
        self._head = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.closed = False
        """True once the connection cannot carry another request."""

    # -- the request side ------------------------------------------------------------

    def request(self, data: bytes, deadline: float, head: bool) -> asyncio.Future[int]:
        """Send one encoded request; the future resolves to the final status code.

        Args:
            data: the whole request, encoded.
            deadline: ``loop.time()`` by which the whole response must have arrived.
            head: the request is HEAD, so the response has no body whatever it declares.
        """
        fut = self._loop.create_future()
        self._waiter = fut
        self.nbytes = 0
        self._raw = b""
        self._hdone = False
        self._head = head
        self._deadline = deadline
        if self._timer is None:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)
        try:
            self.transport.write(data)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - uvloop raises on a transport closed under us
            # Nothing reached the server, so this is a close before any response byte.
            self._fail(_NoResponse(f"connection closed before the request was sent: {exc}"))
            self.abort()
        return fut

    def _on_timer(self) -> None:
        # A lazy timer: armed once for some request's deadline and re-armed only when it
        # fires while a later request (with a later deadline) is in flight. Comparing
        # deadlines rather than clocks keeps it exact on uvloop, whose timers round to ms.
        self._timer = None
        if self._waiter is None:
            return  # idle: the next request arms a new timer
        if self._deadline <= self._timer_at:
            self._fail(TimeoutError("deadline passed before the whole response arrived"))
            self.abort()
        else:
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._on_timer)

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self, status: int, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is None:  # a response nobody asked for: the stream is out of sync
            self.abort()
            return
        self._waiter = None
        if not keep_alive:
            # Connection: close (or HTTP/1.0): close now, so the next request reconnects.
            self.close()
        if not waiter.done():
            waiter.set_result(status)

    def close(self) -> None:
        """Close gracefully (the connection is idle or done with)."""
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once: its state is unknown (timeout, cancel, bad data)."""
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self.abort()  # bytes while idle: the server is out of sync with us
            return
        if not self._hdone:
            # Keep the header bytes (a reference; a concatenation only when the headers
            # span several reads) for the rare close-mid-body decision.
            self._raw = self._raw + data if self._raw else data
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            # 101 Switching Protocols: we never ask for an upgrade, so it is the server's error.
            self._fail(ConnectionResetError("unexpected protocol upgrade (101) in the response"))
            self.abort()
        except HttpParserError as exc:
            if isinstance(exc.__context__, _HeadDone):
                # A HEAD response ended at its headers; llhttp cannot be told so, and is
                # now stopped mid-message: the next response needs a fresh parser.
                self._parser = HttpResponseParser(self)
                return
            self._fail(ConnectionResetError(f"malformed HTTP response: {type(exc).__name__}: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        # The server is closing. Returning False lets the transport close, and
        # connection_lost decides what the close means for a request in flight.
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._waiter is None:
            return
        if not self._raw:
            # Not one byte of response. On a reused connection this is the server's idle
            # timeout racing our request; the engine decides whether to retry.
            reason = f": {type(exc).__name__}: {exc}" if exc is not None else ""
            self._fail(_NoResponse(f"server closed the connection without a response{reason}"))
        elif exc is None and self._hdone and _body_ends_at_close(self._raw):
            self._finish(self._parser.get_status_code(), False)  # HTTP/1.0-style body
        else:
            cause = f"{type(exc).__name__}: {exc}" if exc is not None else "closed"
            self._fail(ConnectionResetError(
                f"connection {cause} mid-response after {self.nbytes} body bytes"))

    # -- httptools callbacks ---------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._hdone = True
        if self._head:
            parser = self._parser
            status = parser.get_status_code()
            if status >= 200:
                # llhttp thinks a HEAD response without Content-Length runs until close;
                # it has no body at all, so only the Connection header and version count.
                self._finish(status, parser.should_keep_alive() or _persists(self._raw))
                raise _HeadDone

    def on_body(self, body: bytes) -> None:
        if self._waiter is not None:  # not bytes of an unsolicited response after ours
            self.nbytes += len(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            # 100 Continue, 103 Early Hints: informational; llhttp goes on to parse the
            # final response from the same stream.
            self._hdone = False
            self.nbytes = 0
            return
        self._finish(status, parser.should_keep_alive())


class FastConnection:
    """A client of the fast engine: one keep-alive connection, opened on first use, and
    its cookies (a VU's jar), made when a response first sets one.

    Cheap to create: no socket is opened until the first request.
    """

    __slots__ = ("_proto", "_had_connection", "jar")

    def __init__(self) -> None:
        self._proto: _Protocol | None = None
        self._had_connection = False
        self.jar: CookieJar | None = None
        """This client's cookies; None until a response sets one (or with cookies off)."""

    async def aclose(self) -> None:
        """Close the connection, if open. Safe to call more than once."""
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.close()


class FastEngine:
    """Sends plain HTTP/1.1 requests over one keep-alive connection per client.

    Args:
        base_url: ``http://host:port`` with an optional path prefix; only plain http.
        timeout_s: total deadline per request, seconds: connect, send and the whole body,
            including one retry after an idle close.
        keep_alive: reuse each client's connection between requests. ``False`` sends
            ``Connection: close`` and opens a new connection for every request, closed
            once its response has arrived; the connect then counts in the request's
            latency and service time, as it does for a real first visit.
        cookies: each client keeps the cookies its responses set and sends them back
            (a ``Cookie`` header given in a request's own headers is sent instead).

    Counters (ints, for this engine's lifetime, across all its clients):
        connects: TCP connections opened.
        reconnects: connections opened to replace a client's earlier one (the server
            closed it: ``Connection: close``, an idle timeout; or the engine dropped it
            after a timeout or an error). Not counted without keep-alive, where every
            request opens its own connection on purpose.
        retries: requests sent again on a fresh connection because the server closed a
            reused keep-alive connection before any response byte (idempotent only).
    """

    name = "fast"

    def __init__(self, base_url: str, timeout_s: float, keep_alive: bool = True,
                 cookies: bool = True) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"the fast client engine speaks plain http only, not {parts.scheme!r}"
                             f" ({base_url})")
        if not parts.hostname:
            raise ValueError(f"no host in base URL {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.keep_alive = keep_alive
        self.cookies = cookies
        self.host = parts.hostname
        self.port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]  # never send userinfo in Host
        self._host_line = f"Host: {host}\r\n".encode("latin-1")
        self._ua_line = f"User-Agent: {USER_AGENT}\r\n".encode("latin-1")
        self._encoded: dict[int, tuple[Request, bytes]] = {}
        self.connects = 0
        self.reconnects = 0
        self.retries = 0

    def new_client(self) -> FastConnection:
        return FastConnection()

    def encode(self, req: Request) -> bytes:
        """The request as bytes on the wire, cached per ``Request`` object.

        Raises:
            ValueError: a header name or value that cannot go on the wire.
        """
        hit = self._encoded.get(id(req))
        if hit is not None and hit[0] is req:  # the entry holds req, so its id is not reused
            return hit[1]
        data = self._build(req)
        if len(self._encoded) >= _ENCODED_CACHE_MAX:
            self._encoded.clear()
        self._encoded[id(req)] = (req, data)
        return data

    def _build(self, req: Request) -> bytes:
        path = self._prefix + req.path
        if not path.isascii():
            path = quote(path, safe=_SAFE_PATH_CHARS)
        out = [f"{req.method} {path} HTTP/1.1\r\n".encode("ascii")]
        names: set[str] = set()
        extra = []
        for name, value in (req.headers or {}).items():
            if any(c in name or c in value for c in "\r\n"):
                raise ValueError(f"header {name!r} contains a line break")
            names.add(name.lower())
            extra.append(f"{name}: {value}\r\n".encode("latin-1"))
        if "host" not in names:
            out.append(self._host_line)
        if "user-agent" not in names:
            out.append(self._ua_line)
        if "accept" not in names:
            # The httpx engine sends the same, so both engines ask the target for the same.
            out.append(b"Accept: */*\r\n")
        if not self.keep_alive and "connection" not in names:
            out.append(b"Connection: close\r\n")
        out.extend(extra)
        if req.body is not None and "content-length" not in names:
            out.append(b"Content-Length: %d\r\n" % len(req.body))
        out.append(b"\r\n")
        if req.body:
            out.append(req.body)
        return b"".join(out)

    async def _connect(self, conn: FastConnection, loop: asyncio.AbstractEventLoop,
                       deadline: float) -> _Protocol:
        proto = _Protocol(loop)
        async with asyncio.timeout_at(deadline):
            await loop.create_connection(lambda: proto, self.host, self.port)
        conn._proto = proto
        self.connects += 1
        if conn._had_connection and self.keep_alive:
            self.reconnects += 1
        conn._had_connection = True
        return proto

    async def send(self, conn: FastConnection, req: Request) -> Outcome:
        """Send one request and read its whole body. Never raises (but on cancellation).

        Args:
            conn: the client (from ``new_client``); one request at a time per client.
            req: the request.

        Returns:
            The status and body bytes (as the parser gives them: after de-chunking), or the
            error class: ``timeout``, ``connect``, ``reset``, ``http_4xx``, ``http_5xx``,
            ``generator``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        proto = conn._proto
        retried = False
        try:
            data = self.encode(req)
        except Exception as exc:  # noqa: BLE001 - a bad request is the generator's failure
            return Outcome(None, 0, "generator", f"{type(exc).__name__}: {exc}"[:300])
        jar = conn.jar
        if jar is not None and not jar.empty:
            data = self._with_cookies(data, jar, req)
        while True:
            fresh = False
            if proto is None or proto.closed:
                try:
                    proto = await self._connect(conn, loop, deadline)
                except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
                    cls, message = _classify_connect_error(exc)
                    return Outcome(None, 0, cls, message)
                fresh = True
            try:
                status = await proto.request(data, deadline, req.method == "HEAD")
            except asyncio.CancelledError:
                proto.abort()  # mid-exchange: the connection's state is unknown
                raise
            except _NoResponse as exc:
                if not fresh and not retried and req.idempotent:
                    # The server closed the idle keep-alive connection as we reused it:
                    # nothing was processed, so an idempotent request may go again.
                    retried = True
                    self.retries += 1
                    proto = None
                    continue
                return Outcome(None, 0, "reset", str(exc)[:300])
            except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
                cls, message = classify_exception(exc)
                return Outcome(None, proto.nbytes, cls, message)
            if not self.keep_alive:
                proto.close()  # one connection per request (the server may have closed it too)
            if self.cookies and SET_COOKIE.search(proto._raw) is not None:
                self._keep_cookies(conn, proto._raw, req)
            err = status_class(status, req.expect_status)
            return Outcome(status, proto.nbytes, err, f"HTTP {status}" if err else None)


    def _with_cookies(self, data: bytes, jar: CookieJar, req: Request) -> bytes:
        """The encoded request with the jar's ``Cookie`` line for its path, if any; the
        request's own ``Cookie`` header, if it has one, is sent instead."""
        if req.headers is not None and any(name.lower() == "cookie" for name in req.headers):
            return data
        line = jar.header_line(self._prefix + req.path)
        if line is None:
            return data
        end = data.find(b"\r\n\r\n") + 2  # after the last header line
        return data[:end] + line + data[end:]

    def _keep_cookies(self, conn: FastConnection, raw: bytes, req: Request) -> None:
        values = set_cookie_values(_final_header_block(raw))
        if not values:
            return  # "set-cookie" was in the body bytes read with the headers
        if conn.jar is None:
            conn.jar = CookieJar(f"http://{self.host}:{self.port}")
        conn.jar.extract(values, self._prefix + req.path)


def _classify_connect_error(exc: BaseException) -> tuple[str, str]:
    """Error class of a failed connect, as the httpx engine classifies its ConnectError.

    Out of descriptors or ports (EMFILE, ENFILE, EADDRNOTAVAIL, …) is the generator's
    failure; a reset during the handshake is ``reset``; a refused or unreachable target
    (or a name that does not resolve) is ``connect``.
    """
    message = f"{type(exc).__name__}: {exc}".strip()[:300]
    code = errno_of(exc)
    if code in GENERATOR_ERRNOS:
        return "generator", message
    if isinstance(exc, TimeoutError):
        return "timeout", message
    if code in (errno.ECONNRESET, errno.EPIPE):
        return "reset", message
    if isinstance(exc, OSError):
        return "connect", message
    return "generator", message
