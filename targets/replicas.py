"""One replica of a service with a synthetic, known capacity, and sessions: the replica,
balancer and autoscaler experiments' target.

One process is one replica; the lab starts several, each on its own port, and tells each
its index in ``LAB_REPLICA_INDEX``. ``GET /work`` needs one of ``SLOTS`` slots and holds it
for a fixed service time (an ``asyncio.sleep``, so the capacity does not depend on how busy
the machine's two cores are, and extra replicas add capacity even where extra CPU-bound
processes could not)::

    service_s    = SERVICE_MS / 1000 × (SLOW_FACTOR if LAB_REPLICA_INDEX is in SLOW_REPLICAS else 1)
    capacity_rps = SLOTS / service_s          (defaults: 4 / 0.010 s = 400 req/s per replica)

A request that finds every slot taken waits in a FIFO queue (never shed): above capacity
the queue, and every request's latency, grows.

Environment, read at startup (a bad value fails the start with one line on stderr):

- ``SLOTS`` (default 4): requests served at once.
- ``SERVICE_MS`` (default 10): service time per request, milliseconds.
- ``SLOW_REPLICAS`` (default none, e.g. ``"0"`` or ``"0,2"``) and ``SLOW_FACTOR`` (default 5):
  the replicas whose index is listed serve SLOW_FACTOR times slower (a noisy neighbour, an
  older machine): what a balancer must cope with.
- ``LAB_REPLICA_INDEX`` (default 0): this replica's index, set by the lab.
- ``CPU_MS`` (default 0): CPU burnt per request on top of the service time, inside the
  slot, holding the event loop (as CPU-bound work does): psutil's CPU beside the
  utilization. The capacity formula holds while ``capacity_rps × CPU_MS / 1000`` stays
  well below one core.
- ``SESSIONS`` = ``memory`` (default: a session lives only in the replica that created it)
  or ``redis`` (shared by every replica, at ``REDIS_URL``, with ``redis.asyncio``).
- ``REQUIRE_SESSION=1``: ``/work`` and ``/api/...`` need a known ``session`` cookie.
- ``AUTO_LOGIN=1`` (implies ``REQUIRE_SESSION=1``): a request without a ``session`` cookie
  logs in on the spot, as if a login page had come first: a new session (counter
  ``logins``) with ``Set-Cookie: session=<id>; Path=/``, and is served.

Sessions: ``POST /login`` (optionally ``?user=NAME``) creates a session and answers its id
in JSON with ``Set-Cookie: session=<id>; Path=/``. When sessions are required, a request
whose ``session`` cookie this replica does not know (the replica that held it died, or the
balancer sent the request to a replica that never saw it) is answered ``401`` with the body
``unknown session`` (counter ``rejected_401``: the experiments' lost sessions) and the
cookie is deleted (``Set-Cookie: session=; Max-Age=0; Path=/``), so the client's next
request logs in again: one lost session costs exactly one 401, as a browser sent back to
its login page. A request without a cookie and without ``AUTO_LOGIN`` is a 401 too.

Routes: ``/health`` (ready), ``/work`` and ``/api/{anything}`` (the capacity-limited
request; JSON with the replica's index and pid, so a test can tell who served it),
``POST /login``, ``/stats``.

``/stats`` (also on ``LAB_STATS_PORT``, ``targets.statsport``, so a saturated replica still
answers it): counters ``requests`` (answered, any outcome), ``served``, ``rejected_401``,
``logins``, ``users`` (distinct ``X-User`` header values seen, at most 100,000) and
``busy_ms`` (slot-milliseconds in service: per request, the mean service time); gauges
``in_flight`` (waiting + in service), ``queued``, ``busy`` (slots in service) and
``utilization``; ``info`` (replica, pid, slots, service_ms, capacity_rps, sessions).

``utilization`` is the time-weighted busy fraction over the last second (a sliding
window): busy slot-seconds in ``[now - 1 s, now]`` / (SLOTS × 1 s), exact (every change
of the busy count is kept for the window), over the time since the start when that is
shorter. A sliding window rather than "since the previous read" because the replica is
read by several readers (the lab's per-second sampler, the autoscaler once per sync
period, a person with curl) and no reader may change what another sees; 1 s because it
is the lab's sampling interval. A reader that wants the mean over its own period, however
long, takes the change of the ``busy_ms`` counter: Δbusy_ms / (SLOTS × Δt_ms).

Under ``uvicorn --workers N`` (N > 1; one replica of N processes sharing one listening
socket, the scale-out experiment's contrast) each worker has its own slots, so the
server's capacity is N × capacity_rps; the counters are summed over the workers (a file
per process, ``targets.workers``), ``info`` adds ``workers`` and ``requests_by_worker``
(each worker's requests since it started, busiest first) and the gauge
``busiest_worker_share`` (the busiest worker's share of them: 1/N is an even split, 1.0
all on one), while the other gauges and ``busy_ms`` are those of the worker that answered.
``/health`` answers 503 until every worker is up.

Run: ``SLOTS=4 SERVICE_MS=10 uvicorn targets.replicas:app --port 8000``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import Counters, serve_stats
from targets.workers import SharedCounters, server_layout

COUNTERS = ("requests", "served", "rejected_401", "logins", "users")
"""The replica's counters; ``requests`` first (the per-worker split reads it)."""
UTILIZATION_WINDOW_S = 1.0
"""The sliding window of the ``utilization`` gauge, seconds."""

MAX_USERS = 100_000
"""Distinct ``X-User`` values remembered for the ``users`` counter (one per VU at most)."""

SESSION_COOKIE = "session"
SESSION_TTL_S = 3600
"""How long a session lives in redis (memory sessions live as long as their replica)."""


@dataclass(frozen=True)
class ReplicaConfig:
    """Settings read from the environment when the replica starts."""

    index: int = 0
    slots: int = 4
    base_service_ms: float = 10.0
    slow_replicas: frozenset[int] = frozenset()
    slow_factor: float = 5.0
    cpu_ms: float = 0.0
    sessions: str = "memory"
    redis_url: str | None = None
    require_session: bool = False
    auto_login: bool = False

    @property
    def slow(self) -> bool:
        return self.index in self.slow_replicas

    @property
    def service_ms(self) -> float:
        """This replica's service time per request, milliseconds."""
        return self.base_service_ms * (self.slow_factor if self.slow else 1.0)

    @property
    def capacity_rps(self) -> float:
        """Requests per second this replica serves when every slot is always busy."""
        return self.slots * 1000.0 / self.service_ms

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ReplicaConfig:
        """Read and validate the settings.

        Raises:
            ValueError: a setting out of range, with the variable's name and what is allowed.
        """
        env = dict(os.environ if env is None else env)

        def number(name: str, default: str, kind: type[int] | type[float], low: float,
                   strict: bool = False) -> Any:
            raw = env.get(name, default).strip() or default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                                 f"got {raw!r}") from None
            if value < low or (strict and value == low) or value != value:
                raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {raw!r}")
            return value

        def flag(name: str) -> bool:
            raw = env.get(name, "0").strip().lower()
            if raw not in ("", "0", "1", "false", "true", "no", "yes"):
                raise ValueError(f"{name} must be 0 or 1, got {raw!r}")
            return raw in ("1", "true", "yes")

        slow: set[int] = set()
        for part in env.get("SLOW_REPLICAS", "").replace(" ", "").split(","):
            if not part:
                continue
            if not part.isdigit():
                raise ValueError(f"SLOW_REPLICAS must be replica indexes like '0' or '0,2', "
                                 f"got {env['SLOW_REPLICAS']!r}")
            slow.add(int(part))
        sessions = env.get("SESSIONS", "memory").strip().lower() or "memory"
        if sessions not in ("memory", "redis"):
            raise ValueError(f"SESSIONS must be 'memory' or 'redis', got {sessions!r}")
        redis_url = env.get("REDIS_URL", "").strip() or None
        if sessions == "redis" and redis_url is None:
            raise ValueError("SESSIONS=redis needs REDIS_URL (a lab-started redis: "
                             "[services] redis = true)")
        auto_login = flag("AUTO_LOGIN")
        return cls(
            index=number("LAB_REPLICA_INDEX", "0", int, 0),
            slots=number("SLOTS", "4", int, 1),
            base_service_ms=number("SERVICE_MS", "10", float, 0, strict=True),
            slow_replicas=frozenset(slow),
            slow_factor=number("SLOW_FACTOR", "5", float, 0, strict=True),
            cpu_ms=number("CPU_MS", "0", float, 0),
            sessions=sessions,
            redis_url=redis_url,
            require_session=flag("REQUIRE_SESSION") or auto_login,
            auto_login=auto_login,
        )


class BusyMeter:
    """Slots in service over time: the busy slot-seconds since the start, and over the
    last ``window_s``, exactly (a piecewise-constant count integrated at every change).

    Changed by the event loop, read from the stats thread too: one lock around both.
    """

    def __init__(self, slots: int, window_s: float = UTILIZATION_WINDOW_S,
                 clock: Any = time.monotonic) -> None:
        self.slots = slots
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self.busy = 0
        self._t = self._start
        self._integral = 0.0
        """Busy slot-seconds from the start up to ``_t``."""
        # (time of a change, integral at that time, busy count after it): enough to
        # integrate over any span that starts within the window.
        self._changes: deque[tuple[float, float, int]] = deque([(self._start, 0.0, 0)])

    def _change(self, delta: int) -> None:
        with self._lock:
            now = self._clock()
            self._integral += self.busy * (now - self._t)
            self._t = now
            self.busy += delta
            self._changes.append((now, self._integral, self.busy))
            self._prune(now)

    def enter(self) -> None:
        """A request took a slot."""
        self._change(+1)

    def leave(self) -> None:
        """A request gave its slot back."""
        self._change(-1)

    def _prune(self, now: float) -> None:
        # Keep the last change at or before the window's start: it gives the count there.
        changes, edge = self._changes, now - self.window_s
        while len(changes) > 1 and changes[1][0] <= edge:
            changes.popleft()

    def read(self) -> tuple[float, float]:
        """``(busy slot-seconds since the start, utilization over the window)``; the
        utilization is in 0..1 (over the time since the start when that is shorter)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            total = self._integral + self.busy * (now - self._t)
            since = max(self._start, now - self.window_s)
            t0, integral0, busy0 = self._changes[0]
            at_since = integral0 + busy0 * (since - t0) if since >= t0 else integral0
        span = now - since
        utilization = (total - at_since) / (self.slots * span) if span > 0 else 0.0
        return total, min(1.0, max(0.0, utilization))


class SessionStore(Protocol):
    async def create(self, user: str) -> str: ...

    async def exists(self, session_id: str) -> bool: ...

    async def close(self) -> None: ...


class MemorySessions:
    """Sessions in this replica's memory: gone with the replica, unknown to the others."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    async def create(self, user: str) -> str:
        session_id = secrets.token_urlsafe(16)
        self._users[session_id] = user
        return session_id

    async def exists(self, session_id: str) -> bool:
        return session_id in self._users

    async def close(self) -> None:
        self._users.clear()


class RedisSessions:
    """Sessions in redis, shared by every replica (keys ``replicas:session:<id>``)."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)

    async def create(self, user: str) -> str:
        session_id = secrets.token_urlsafe(16)
        await self._redis.set(f"replicas:session:{session_id}", user, ex=SESSION_TTL_S)
        return session_id

    async def exists(self, session_id: str) -> bool:
        return bool(await self._redis.exists(f"replicas:session:{session_id}"))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class Replica:
    """The state of one running replica."""

    def __init__(self, config: ReplicaConfig, sessions: SessionStore,
                 shared: SharedCounters | None = None, workers: int = 1) -> None:
        self.config = config
        self.sessions = sessions
        self.slots = asyncio.Semaphore(config.slots)  # FIFO: waiters are served in turn
        self.meter = BusyMeter(config.slots)
        self.counters = Counters(*COUNTERS)
        self.shared = shared
        """Under ``uvicorn --workers N`` (N > 1): every worker's counters, summed in ``stats``."""
        self.workers = workers
        self.in_flight = 0
        self.pid = os.getpid()
        self._users: set[str] = set()

    def saw_user(self, user: str | None) -> None:
        if user is not None and user not in self._users and len(self._users) < MAX_USERS:
            self._users.add(user)
            self.count(users=1)

    def count(self, **deltas: int) -> None:
        """Count one request's outcome (in this worker's file too, under several workers)."""
        self.counters.add(**deltas)
        if self.shared is not None:
            self.shared.add_many(**deltas)

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures (read from any thread)."""
        config = self.config
        busy_s, utilization = self.meter.read()
        counters = self.counters.snapshot()
        by_worker: list[int] = []
        if self.shared is not None:
            per_pid = self.shared.read_all()
            counters = {f: sum(v[i] for v in per_pid.values()) for i, f in enumerate(self.shared.fields)}
            by_worker = sorted((v[0] for v in per_pid.values()), reverse=True)
        body: dict[str, object] = {
            **counters,
            "busy_ms": round(busy_s * 1000.0, 3),
            "gauges": {
                "in_flight": self.in_flight,
                "queued": max(0, self.in_flight - self.meter.busy),
                "busy": self.meter.busy,
                "utilization": round(utilization, 4),
            },
            "info": {
                "replica": str(config.index),
                "pid": str(self.pid),
                "slots": str(config.slots),
                "service_ms": f"{config.service_ms:g}",
                "capacity_rps": f"{config.capacity_rps:g}",
                "sessions": config.sessions,
            },
        }
        if self.shared is not None:
            # Gauges and busy_ms stay this worker's (the one that answered): only counters
            # are summed over the workers.
            info = body["info"]
            assert isinstance(info, dict)
            info.pop("pid")
            info["workers"] = str(self.workers)
            info["requests_by_worker"] = "/".join(str(n) for n in by_worker)
            total = sum(by_worker)
            gauges = body["gauges"]
            assert isinstance(gauges, dict)
            gauges["busiest_worker_share"] = round(by_worker[0] / total, 4) if total else 0.0
        return body


def _burn_cpu(ms: float) -> None:
    end = time.process_time() + ms / 1000.0
    while time.process_time() < end:
        pass


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Replica]]:
    try:
        config = ReplicaConfig.from_env()
    except ValueError as exc:
        print(f"replicas: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    sessions: SessionStore
    if config.sessions == "redis":
        assert config.redis_url is not None
        redis_sessions = RedisSessions(config.redis_url)
        try:
            await redis_sessions.ping()
        except Exception as exc:
            print(f"replicas: cannot reach redis at REDIS_URL={config.redis_url}: {exc}",
                  file=sys.stderr, flush=True)
            await redis_sessions.close()
            raise
        sessions = redis_sessions
    else:
        sessions = MemorySessions()
    server_pid, workers = server_layout()
    shared = SharedCounters(server_pid, COUNTERS, name="replicas") if workers > 1 else None
    replica = Replica(config, sessions, shared, workers)
    try:
        with serve_stats(replica.stats):
            yield {"replica": replica}
    finally:
        await sessions.close()
        if shared is not None:
            shared.close()


def _set_session(response: Response, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, path="/", httponly=True, samesite="lax")


async def login(request: Request) -> Response:
    """Create a session (``?user=NAME``, default ``anonymous``) and set its cookie."""
    replica: Replica = request.state.replica
    user = request.query_params.get("user") or request.headers.get("x-user") or "anonymous"
    session_id = await replica.sessions.create(user)
    replica.count(requests=1, logins=1)
    response = JSONResponse({"session": session_id, "user": user, "replica": replica.config.index,
                             "pid": replica.pid})
    _set_session(response, session_id)
    return response


async def work(request: Request) -> Response:
    """Check the session (when required), then hold one slot for the service time."""
    replica: Replica = request.state.replica
    config = replica.config
    replica.saw_user(request.headers.get("x-user"))
    session_id = request.cookies.get(SESSION_COOKIE) or None
    new_session = None
    if config.require_session:
        if session_id is None and config.auto_login:
            new_session = session_id = await replica.sessions.create(
                request.headers.get("x-user") or "anonymous")
        elif session_id is None or not await replica.sessions.exists(session_id):
            replica.count(requests=1, rejected_401=1)
            response = PlainTextResponse("unknown session", status_code=401)
            if session_id is not None:
                response.delete_cookie(SESSION_COOKIE, path="/")
            return response
    replica.in_flight += 1
    served = False
    try:
        async with replica.slots:
            replica.meter.enter()
            try:
                await asyncio.sleep(config.service_ms / 1000.0)
                if config.cpu_ms > 0:
                    _burn_cpu(config.cpu_ms)
            finally:
                replica.meter.leave()
        served = True
    finally:
        replica.in_flight -= 1
        # Counted when answered, with its login, at once: a stats reader never sees half.
        replica.count(requests=1, served=int(served), logins=int(new_session is not None))
    response = JSONResponse({"replica": config.index, "pid": replica.pid, "session": session_id})
    if new_session is not None:
        _set_session(response, new_session)
    return response


async def health(request: Request) -> Response:
    """200 once every worker process of the server is up, 503 before (under several
    workers, a load started on the first one up would open every connection to it)."""
    replica: Replica = request.state.replica
    if replica.shared is not None:
        up = len(replica.shared.read_all())
        if up < replica.workers:
            return PlainTextResponse(f"starting: {up} of {replica.workers} worker processes up",
                                     status_code=503)
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    replica: Replica = request.state.replica
    return JSONResponse(replica.stats())


app = Starlette(
    routes=[
        Route("/work", work, methods=["GET", "POST"]),
        Route("/api/{rest:path}", work, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/login", login, methods=["POST"]),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
