"""Choosing and building a client engine: ``httpx`` (full HTTP) or ``fast`` (lean HTTP/1.1)."""

from __future__ import annotations

import ipaddress
from typing import Protocol
from urllib.parse import urlsplit

from lab.load.outcome import Outcome
from lab.load.workload import Request


class ClientEngine(Protocol):
    """What the executors need of a client engine."""

    name: str

    def new_client(self) -> object: ...

    async def send(self, client: object, req: Request) -> Outcome: ...


def is_loopback_http(url: str) -> bool:
    """True for a plain ``http://`` URL whose host is on this machine (127.0.0.0/8, ::1,
    localhost)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def choose_client(requested: str, base_url: str, needs_httpx: bool = False) -> str:
    """The engine to use: ``auto`` picks ``fast`` for plain-http loopback targets (it
    speaks HTTP/1.1 without TLS, HTTP/2, proxies or redirects), else ``httpx``.

    Args:
        requested: ``auto``, ``fast`` or ``httpx``.
        base_url: the target's base URL.
        needs_httpx: the load asks for what only httpx does (``http2``,
            ``follow_redirects``).

    Raises:
        ValueError: ``fast`` was asked for a target or a load it cannot serve.
    """
    if requested == "httpx":
        return "httpx"
    loopback = is_loopback_http(base_url)
    if requested == "fast" and not loopback:
        raise ValueError(f"client 'fast' only serves plain http:// targets on this machine, "
                         f"not {base_url}; use client = \"httpx\" (or \"auto\")")
    if requested == "fast" and needs_httpx:
        raise ValueError("client 'fast' speaks HTTP/1.1 and follows no redirects; "
                         "use client = \"httpx\" (or \"auto\") for http2 or follow_redirects")
    return "fast" if loopback and not needs_httpx else "httpx"


def make_engine(name: str, base_url: str, timeout_s: float, keep_alive: bool = True,
                http2: bool = False, follow_redirects: bool = False,
                cookies: bool = True) -> ClientEngine:
    """Build the named engine for one generator worker.

    Args:
        name: ``fast`` or ``httpx`` (already resolved from ``auto``).
        base_url: the target's base URL.
        timeout_s: total deadline per request, seconds.
        keep_alive: reuse connections; ``False`` opens a new one for every request.
        http2: send HTTP/2 only (httpx).
        follow_redirects: follow 3xx redirects (httpx).
        cookies: each client (a VU) keeps the cookies its responses set and sends them
            back; off, no client keeps any.

    Raises:
        ValueError: ``http2`` or ``follow_redirects`` asked of the fast engine.
    """
    if name == "fast":
        if http2 or follow_redirects:
            raise ValueError("the fast client engine speaks HTTP/1.1 and follows no redirects")
        from lab.load.fast_engine import FastEngine

        return FastEngine(base_url, timeout_s, keep_alive, cookies=cookies)
    # Imported here: a worker on the fast engine never loads httpx (~70 ms of its start).
    from lab.load.httpx_engine import HttpxEngine

    return HttpxEngine(base_url, timeout_s, keep_alive, http2=http2, follow_redirects=follow_redirects,
                       cookies=cookies)
