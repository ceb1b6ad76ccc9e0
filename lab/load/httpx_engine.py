"""The ``httpx`` client engine: full HTTP (TLS, HTTP/2, redirects, auth) for any target.

Measured on a 2-core machine: one ``httpx.AsyncClient`` shared by 50 concurrent requests
costs about 4.5 ms of CPU per request, and its pool slows down as connections grow; fifty
clients of one connection each cost about 1 ms per request. So every VU (closed model) or
in-flight slot (open model) owns a client limited to one connection.

A client keeps the cookies its responses set (httpx's ``Cookies``, on the standard
library's ``http.cookiejar``), so each VU has its own jar; with ``cookies`` off (the open
model) every client's jar refuses them all.
"""

from __future__ import annotations

import asyncio
import http.cookiejar

import httpx

from lab.load.outcome import Outcome, classify_exception, status_class
from lab.load.workload import Request

_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
"""A policy that accepts no cookie from any domain (and so never sends one)."""


class HttpxEngine:
    """Sends requests with httpx, one connection per client, under a total deadline.

    Args:
        base_url: e.g. ``http://127.0.0.1:41234``.
        timeout_s: total deadline per request, seconds: connect, send and the whole body
            (of every response of a redirect chain). httpx's own timeouts are per
            operation, so a server trickling one byte at a time would never trip them;
            the deadline wraps the whole exchange.
        keep_alive: reuse each client's connection between requests. ``False`` keeps no
            idle connection, so every request opens a new connection, closed after its
            response; over HTTP/1.1 it also sends ``Connection: close`` (as the fast
            engine does; HTTP/2 forbids the header, RFC 9113 section 8.2.2).
        http2: HTTP/2 only, never HTTP/1.1: over ``http://`` with prior knowledge (h2c,
            RFC 9113 section 3.3), over ``https://`` by ALPN. A server that cannot speak
            it fails the requests, so every response counted came over HTTP/2.
        follow_redirects: follow 3xx redirects (httpx's limit: 20); a chain is one
            request, with the final response's status and body bytes.
        cookies: each client keeps the cookies its responses set and sends them back
            (a ``Cookie`` header given in a request's own headers is sent instead).
    """

    name = "httpx"

    def __init__(self, base_url: str, timeout_s: float, keep_alive: bool = True,
                 http2: bool = False, follow_redirects: bool = False, cookies: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.keep_alive = keep_alive
        self.http2 = http2
        self.follow_redirects = follow_redirects
        self.cookies = cookies
        # The per-operation timeout only matters if the deadline cannot fire (it always
        # can); keep it a little longer so the deadline is what users see.
        self._httpx_timeout = httpx.Timeout(timeout_s + 1.0)
        self._limits = httpx.Limits(max_connections=1, max_keepalive_connections=1 if keep_alive else 0)
        self._headers = {"User-Agent": "scalability-lab", "Accept": "*/*", "Accept-Encoding": "identity"}
        if not keep_alive and not http2:
            self._headers["Connection"] = "close"
        # Measured: a client that builds its own TLS context costs ~27 ms to create (it
        # loads the CA bundle); with one shared context it costs ~0.03 ms. The open model
        # creates clients while the load runs, so this is the difference between keeping
        # the schedule and falling seconds behind it.
        self._ssl = httpx.create_ssl_context()

    def new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            cookies=None if self.cookies else http.cookiejar.CookieJar(_NO_COOKIES),
            base_url=self.base_url,
            limits=self._limits,
            timeout=self._httpx_timeout,
            http1=not self.http2,
            http2=self.http2,
            follow_redirects=self.follow_redirects,
            trust_env=False,
            verify=self._ssl,
            # The same request headers as the fast engine: no compression asked for, so
            # the target does the same work whichever engine drives it.
            headers=self._headers,
        )

    async def send(self, client: httpx.AsyncClient, req: Request) -> Outcome:
        """Send one request and read its whole body. Never raises (but on cancellation)."""
        nbytes = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                async with client.stream(
                    req.method, req.path, headers=req.headers, content=req.body
                ) as resp:
                    async for chunk in resp.aiter_raw():
                        nbytes += len(chunk)
                    status = resp.status_code
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure is a measured outcome
            if not isinstance(exc, Exception):
                raise
            cls, message = classify_exception(exc)
            return Outcome(None, nbytes, cls, message)
        err = status_class(status, req.expect_status)
        return Outcome(status, nbytes, err, f"HTTP {status}" if err else None)
