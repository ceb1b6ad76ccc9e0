"""A VU's cookie jar for the fast client engine, on the standard library's ``http.cookiejar``.

Each VU keeps its own cookies, as a browser does, as k6 keeps a jar per VU and Locust a
session per user: a ``Set-Cookie`` in a response is sent back (``Cookie``) by the same VU
on its later requests to a matching path, until it expires or is deleted
(``Max-Age=0`` or an ``Expires`` in the past). The rules (path and domain matching,
expiry, deletion, RFC 6265's ordering) are ``http.cookiejar``'s, the same jar httpx's
``Cookies`` wraps, so both client engines agree on what is sent.

``http.cookiejar`` costs tens of µs per request it looks at; the fast engine costs about
7. So the ``Cookie`` line is computed once and reused until the jar changes or a cookie in
it expires, for any path when every cookie's path is ``/`` (the common case: the host is
the same for every request of a run), else per request path. A VU whose responses never
set a cookie never builds a jar at all.
"""

from __future__ import annotations

import email.message
import http.cookiejar
import re
import time
import urllib.request

_INF = float("inf")

_LINES_CACHE_MAX = 256
"""``Cookie`` lines kept per jar for paths that cookie paths tell apart."""

SET_COOKIE = re.compile(rb"\r\nset-cookie[ \t]*:", re.IGNORECASE)
"""Whether a response's header block holds a ``Set-Cookie`` (measured: about 0.2 µs for
a typical header block, where httptools' per-header callbacks cost 0.35 µs)."""


class _Response:
    """What ``http.cookiejar`` asks of a response: its headers, through ``info()``."""

    __slots__ = ("_headers",)

    def __init__(self, headers: email.message.Message) -> None:
        self._headers = headers

    def info(self) -> email.message.Message:
        return self._headers


def set_cookie_values(header_block: bytes) -> list[str]:
    """The values of every ``Set-Cookie`` line of a response's header block (bytes as
    received, from the status line on), in order."""
    values = []
    for line in header_block.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"set-cookie":
            values.append(value.strip().decode("latin-1"))
    return values


class CookieJar:
    """One VU's cookies for one origin.

    Args:
        origin: ``http://host:port`` the VU's requests go to (paths are appended).
    """

    __slots__ = ("_jar", "_origin", "_lines", "_valid_until", "_by_path", "empty")

    def __init__(self, origin: str) -> None:
        self._jar = http.cookiejar.CookieJar()
        self._origin = origin.rstrip("/")
        self._lines: dict[str, bytes | None] = {}
        self._valid_until = _INF
        self._by_path = False
        self.empty = True
        """No cookie is held: nothing to send."""

    def extract(self, set_cookies: list[str], path: str) -> None:
        """Store (or delete) the cookies of a response to a request for ``path``.

        Args:
            set_cookies: the response's ``Set-Cookie`` values (``set_cookie_values``).
            path: the request's path (with its query), e.g. ``/work?x=1``.
        """
        headers = email.message.Message()
        for value in set_cookies:
            headers["Set-Cookie"] = value
        self._jar.extract_cookies(_Response(headers),  # type: ignore[arg-type]
                                  urllib.request.Request(self._origin + path))
        self._changed()

    def _changed(self) -> None:
        self._lines.clear()
        cookies = list(self._jar)
        self.empty = not cookies
        self._by_path = any(c.path != "/" for c in cookies)
        self._valid_until = min((c.expires for c in cookies if c.expires is not None), default=_INF)

    def header_line(self, path: str) -> bytes | None:
        """``b"Cookie: a=1; b=2\\r\\n"`` for a request to ``path``, or None: no cookie matches."""
        if self.empty:
            return None
        if time.time() >= self._valid_until:
            self._jar.clear_expired_cookies()
            self._changed()
            if self.empty:
                return None
        key = path if self._by_path else ""
        try:
            return self._lines[key]
        except KeyError:
            pass
        request = urllib.request.Request(self._origin + path)
        self._jar.add_cookie_header(request)
        value = request.get_header("Cookie")
        line = f"Cookie: {value}\r\n".encode("latin-1") if value else None
        if len(self._lines) >= _LINES_CACHE_MAX:
            self._lines.clear()
        self._lines[key] = line
        return line

    def __len__(self) -> int:
        return len(self._jar)
