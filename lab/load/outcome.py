"""What one request came to (``Outcome``), and how a failure is classed: the generator's own
failures apart from the target's errors. Shared by the client engines.
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass

GENERATOR_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
"""OS errors that are the generator's own failure (out of descriptors, buffers, memory or
ports), not the target's."""


@dataclass(slots=True)
class Outcome:
    """What one attempt came to."""

    status: int | None
    """HTTP status, None when no response arrived."""
    nbytes: int
    """Response body bytes as received on the wire (before decompression)."""
    error_class: str | None
    """None for success, else a class of ``lab.events.ERROR_CLASSES``."""
    message: str | None = None


def errno_of(exc: BaseException) -> int | None:
    """The OS error number behind ``exc`` (its own, or of what caused it), or None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur.errno
        cur = cur.__cause__ or cur.__context__
    return None


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """Map an exception raised while sending to ``(error_class, message)``.

    Timeouts (ours or httpx's) are ``timeout``; refused connections ``connect``; a peer
    that resets or closes mid-exchange ``reset``; more redirects than httpx follows (a
    redirect loop) ``redirects``; anything that is the generator's own
    failure (out of file descriptors, ports or memory, or an unexpected exception)
    ``generator``, kept apart from the target's errors.
    """
    code = errno_of(exc)
    message = f"{type(exc).__name__}: {exc}".strip()[:300]
    if code in GENERATOR_ERRNOS:
        return "generator", message
    # Only httpx raises its exceptions, and only the httpx engine imports it: a worker on
    # the fast engine starts without it.
    httpx = sys.modules.get("httpx")
    if isinstance(exc, TimeoutError) or (httpx and isinstance(exc, httpx.TimeoutException)):
        return "timeout", message or "timeout"
    if httpx and isinstance(exc, httpx.ConnectError):
        if code in (errno.ECONNRESET, errno.EPIPE):
            return "reset", message
        return "connect", message
    if isinstance(exc, ConnectionError) or (httpx and isinstance(exc, httpx.TransportError)):
        return "reset", message
    if httpx and isinstance(exc, httpx.TooManyRedirects):
        return "redirects", message
    return "generator", message


def status_class(status: int, expect: frozenset[int]) -> str | None:
    """The error class of an HTTP status, or None when it counts as a success."""
    if status < 400 or status in expect:
        return None
    return "http_5xx" if status >= 500 else "http_4xx"
