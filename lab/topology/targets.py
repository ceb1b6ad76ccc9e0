"""Start, wait for, and stop sample targets (uvicorn subprocesses on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httpx

from lab.errors import TargetError
from lab.procs import spawn, terminate_tree
from lab.spec import TargetSpec

STDERR_TAIL_LINES = 20
GRACEFUL_SHUTDOWN_S = 1
"""uvicorn's --timeout-graceful-shutdown: once told to stop, a target waits this long for
requests still running, then cancels them and shuts down (its lifespan shutdown runs).
Without it uvicorn waits for them forever: a target that answers nothing (every request
hung) held each run ~10 s past its end until the lab killed it."""
STOP_GRACE_S = 3.0
"""Seconds between SIGTERM and SIGKILL when stopping a target: its graceful shutdown
plus time for its lifespan shutdown."""
STATS_PORT_ENV = "LAB_STATS_PORT"
"""Where a target started by the lab may answer its stats path besides its own port: from
a thread of its own, so a saturated target still answers (``targets/statsport.py``)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def url_host(address: str) -> str:
    """An IP address as a URL's host (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


class TargetProcess:
    """A target app served by uvicorn in a subprocess, bound to 127.0.0.1 on a free port.

    Use ``await start()`` then ``await stop()`` (always: in a ``finally``). The target's
    stdout and stderr are drained continuously; the last lines are kept for error messages.

    Args:
        spec: the resolved ``[target]`` of a variant (``app`` must be set).
        grace_s: seconds between SIGTERM and SIGKILL when stopping (the whole tree).
    """

    def __init__(self, spec: TargetSpec, grace_s: float = STOP_GRACE_S,
                 extra_env: dict[str, str] | None = None) -> None:
        if not spec.app:
            raise ValueError("TargetProcess needs an app target")
        self.spec = spec
        self.grace_s = grace_s
        self.extra_env = dict(extra_env or {})
        """Set after ``spec.env``: the URLs of the run's services."""
        self.port = free_port()
        """Chosen now, so the load generator can be started while the target starts."""
        self.stats_port = free_port() if spec.stats_path else None
        """Passed as ``LAB_STATS_PORT``: a target that serves its stats there answers them
        however busy its own port is."""
        self.proc: asyncio.subprocess.Process | None = None
        self._tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._drain: asyncio.Task[None] | None = None
        self.startup_s = 0.0

    @property
    def url(self) -> str:
        return f"http://{url_host(self.spec.host)}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    def stderr_tail(self, max_chars: int = 600) -> str:
        """The target's last output lines joined with `` | `` (one line, for messages),
        keeping the end (where a traceback names its exception) within ``max_chars``."""
        text = " | ".join(line.strip() for line in self._tail if line.strip())
        return text if len(text) <= max_chars else "..." + text[-max_chars:]

    async def start(self) -> None:
        """Spawn uvicorn and wait until ``ready_path`` answers 200.

        Raises:
            TargetError: the process exited, or ``ready_timeout`` passed; the message
                includes the last lines of the target's stderr.
        """
        spec = self.spec
        env = dict(os.environ)
        env.update(spec.env)
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop(STATS_PORT_ENV, None)
        if self.stats_port is not None:
            env[STATS_PORT_ENV] = str(self.stats_port)
        argv = [
            sys.executable, "-m", "uvicorn", str(spec.app),
            "--host", self.spec.host, "--port", str(self.port),
            "--workers", str(spec.workers),
            "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_S),
            "--app-dir", spec.app_dir or os.getcwd(),
        ]
        t_spawn = time.monotonic()
        cpus = frozenset(range(spec.cpus)) if spec.cpus else None
        self.proc = await spawn(argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                cpus=cpus)
        self._drain = asyncio.create_task(self._drain_output())
        await self._wait_ready()
        self.startup_s = time.monotonic() - t_spawn

    async def _drain_output(self) -> None:
        assert self.proc and self.proc.stdout
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            self._tail.append(line.decode(errors="replace").rstrip())

    async def _wait_ready(self) -> None:
        spec = self.spec

        async def died() -> str | None:
            if not self.exited:
                return None
            await self._settle_output()
            return (f"target {spec.app} exited with code "
                    f"{self.proc.returncode if self.proc else '?'} before it was ready; "
                    f"its stderr: {self.stderr_tail() or '(empty)'}")

        problem = await wait_ready(self.url, spec.ready_path, spec.ready_timeout, died)
        if problem:
            await self._settle_output()
            raise TargetError(f"{problem}; its stderr: {self.stderr_tail() or '(empty)'}"
                              if "exited with code" not in problem else problem)

    async def _settle_output(self) -> None:
        if self._drain:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._drain), 1.0)

    async def stop(self) -> int | None:
        """SIGTERM the whole tree, SIGKILL after the grace period. Safe to call twice."""
        code = None
        if self.proc is not None:
            code = await terminate_tree(self.proc, self.grace_s)
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 1.0)
        return code

    async def died(self) -> int:
        """Wait until the target exits on its own; returns its exit code."""
        assert self.proc is not None
        code = await self.proc.wait()
        await self._settle_output()
        return code


NOTHING_LISTENS_S = 1.0
"""How long an external URL target may refuse connections (or its host name fail to
resolve) before the wait ends: a server that is just starting gets this long, while a
port nobody listens on is said at once instead of after the whole ``ready_timeout``."""


def _nothing_there(exc: httpx.HTTPError) -> str | None:
    """Why no server can answer at all (refused, or the host does not resolve), else None."""
    if not isinstance(exc, httpx.ConnectError):
        return None
    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cur, ConnectionRefusedError) or (
                isinstance(cur, OSError) and cur.errno == errno.ECONNREFUSED):
            return "connection refused: nothing listens there"
        cur = cur.__cause__ or cur.__context__
    return None


async def wait_ready(
    url: str,
    ready_path: str,
    timeout_s: float,
    died: Callable[[], Awaitable[str | None]] | None = None,
    nothing_there_s: float | None = None,
) -> str | None:
    """Poll ``url + ready_path`` every 50 ms until it answers 200.

    Args:
        died: called between polls; a message it returns ends the wait (the process the
            URL belongs to has exited).
        nothing_there_s: end the wait once every poll for this long found no server at
            all (connection refused, or a host name that does not resolve); None waits
            the whole ``timeout_s`` (a target the lab starts refuses until it listens).
            A port that answers, even with an error, is waited for up to ``timeout_s``.

    Returns:
        None when ready, else why not (one line).
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    nothing_since: float | None = None
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while True:
            if died is not None:
                message = await died()
                if message:
                    return message
            try:
                resp = await client.get(url.rstrip("/") + ready_path)
                if resp.status_code == 200:
                    return None
                last = f"HTTP {resp.status_code}"
                nothing_since = None
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                why = _nothing_there(exc)
                now = time.monotonic()
                if why is None:
                    nothing_since = None
                elif nothing_since is None:
                    nothing_since = now
                elif nothing_there_s is not None and now - nothing_since >= nothing_there_s:
                    return f"{url}: {why} (tried for {nothing_there_s:g}s)"
            if time.monotonic() > deadline:
                return (f"{url} did not answer 200 on {ready_path} within {timeout_s:g}s "
                        f"(last: {last})")
            await asyncio.sleep(0.05)


class StatsReader:
    """Reads a target's stats path repeatedly over one keep-alive connection.

    ``read()`` returns the JSON object, ``{}`` when this read failed (a busy target may
    not answer in time), and sets ``absent`` when the target has no stats endpoint (404,
    or an answer that is not a JSON object), after which reads return ``{}`` at once.

    Args:
        url: the target's base URL.
        path: its stats path (None or "": it has none).
        stats_port: the port the lab asked the target to serve its stats on as well
            (``LAB_STATS_PORT``), read first; a target that refuses the connection or
            answers 404 there does not serve it, and the target's own port is read instead
            from then on.
    """

    def __init__(self, url: str, path: str | None, timeout_s: float = 2.0,
                 stats_port: int | None = None) -> None:
        self.absent = not path
        own = url.rstrip("/") + (path or "")
        self._urls = ([f"http://127.0.0.1:{stats_port}{path}"] if stats_port and path else []) + [own]
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    @property
    def url(self) -> str:
        """The URL reads go to now."""
        return self._urls[0]

    async def read(self, fresh: bool = False) -> dict[str, object]:
        """One reading; ``fresh``: over a new connection (the kept-alive one may have been
        cut mid-request by a cancelled read)."""
        while not self.absent:
            try:
                if fresh:
                    async with httpx.AsyncClient(timeout=self.timeout_s, trust_env=False) as client:
                        resp = await client.get(self.url)
                else:
                    resp = await self._client.get(self.url)
            except httpx.ConnectError:
                if len(self._urls) > 1:  # no stats port: the target's own then
                    self._urls.pop(0)
                    continue
                return {}
            except httpx.HTTPError:
                return {}
            if resp.status_code in (404, 405) and len(self._urls) > 1:
                self._urls.pop(0)
                continue
            if resp.status_code != 200:
                self.absent = resp.status_code in (404, 405)
                return {}
            try:
                data = resp.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                self.absent = True
                return {}
            return data
        return {}

    async def close(self) -> None:
        await self._client.aclose()
