"""Shared in-process state behind one global lock or N sharded locks: the shared-state target.

``POST /items/{key}/incr`` increments one key's counter in a dict shared by every
request. It is a plain ``def`` endpoint, so Starlette runs it in anyio's thread pool
(``THREADPOOL_TOKENS`` threads at most) and requests really do run at the same time.
The update is a read-modify-write that must not lose increments, so it takes a lock,
and inside the lock it does a small blocking step of ``HOLD_MS`` (``time.sleep``: I/O
done under the lock, such as writing the change through to a store or a log). The
sleep releases the GIL, as real I/O does, so the lock rather than the GIL is what
serialises the threads:

- ``LOCK_MODE=global``: one lock around the whole dict. Every update waits for every
  other one; throughput caps at 1 / HOLD_MS whatever the number of threads.
- ``LOCK_MODE=sharded``: the keys are split into ``SHARDS`` dicts, each with its own
  lock (shard = key mod SHARDS). Updates to different shards proceed in parallel,
  so up to SHARDS of them hold a lock at once. ``SHARDS=1`` is the global lock again.

``GET /items/{key}`` reads one counter (under its shard's lock, without the hold).

``GET /stats``::

    {"requests": n, "increments": n, "lock_wait_us": n, "lock_hold_us": n,
     "gauges": {"lock_waiters": n, "lock_holders": n, "handlers_running": n},
     "info": {"lock_mode": "global", "shards": "1", "hold_ms": "2"}}

``lock_wait_us`` is the total time requests spent waiting for a lock, so the lab's
``per_request.lock_wait_us`` is the mean wait per request: contention, measured.
``increments`` is the sum of every counter in the dict; it equals the number of
increment requests served, which shows no update was lost. A request's counters are
counted with its write, at once, so over any window increments per request are 1.

Configuration, read from the environment at startup:

- ``LOCK_MODE`` ``global`` | ``sharded`` (default ``global``)
- ``SHARDS`` number of shards for ``sharded`` (default 16; ignored for ``global``)
- ``HOLD_MS`` blocking step inside the lock, ms (default 2; 0 for none)
- ``KEYS`` number of keys, 1..KEYS (default 1000)
- ``THREADPOOL_TOKENS`` anyio thread-pool limit for sync endpoints (default 40)

One worker process on purpose: the state lives in this process's memory. (Several
uvicorn workers would each have their own copy, which is a different design:
partitioned state, with no sharing at all.)

Run: ``LOCK_MODE=sharded uvicorn targets.shared_state:app --port 8000``
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats


@dataclass(frozen=True)
class SharedStateConfig:
    """Settings read from the environment when the app starts."""

    lock_mode: str = "global"
    shards: int = 16
    hold_ms: float = 2.0
    keys: int = 1000
    threadpool_tokens: int = 40

    @property
    def lock_count(self) -> int:
        """How many locks (and dicts) the state is split into."""
        return 1 if self.lock_mode == "global" else self.shards

    @classmethod
    def from_env(cls) -> SharedStateConfig:
        """Read and validate the environment; raise ValueError with a readable message."""

        def number(name: str, default: str, kind: type, minimum: float) -> float:
            raw = os.environ.get(name, "").strip() or default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum:g}, got {raw!r}")
            return value

        mode = os.environ.get("LOCK_MODE", "").strip().lower() or "global"
        if mode not in ("global", "sharded"):
            raise ValueError(f"LOCK_MODE must be 'global' or 'sharded', got {mode!r}")
        return cls(
            lock_mode=mode,
            shards=int(number("SHARDS", "16", int, 1)),
            hold_ms=number("HOLD_MS", "2", float, 0),
            keys=int(number("KEYS", "1000", int, 1)),
            threadpool_tokens=int(number("THREADPOOL_TOKENS", "40", int, 1)),
        )


@dataclass
class Shard:
    """One lock and the part of the state it guards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: dict[int, int] = field(default_factory=dict)


class SharedState:
    """Counters by key, split into shards; plus the target's own statistics."""

    def __init__(self, config: SharedStateConfig) -> None:
        self.config = config
        self.shards = [Shard() for _ in range(config.lock_count)]
        for key in range(1, config.keys + 1):
            self.shard_of(key).counters[key] = 0
        # The statistics have their own lock, held for a few bytecodes only.
        self._stats_lock = threading.Lock()
        self.requests = 0
        self.lock_wait_ns = 0
        self.lock_hold_ns = 0
        self.lock_waiters = 0
        self.lock_holders = 0
        self.handlers_running = 0

    def shard_of(self, key: int) -> Shard:
        return self.shards[key % len(self.shards)]

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def increment(self, key: int) -> int:
        """Read-modify-write one counter under its shard's lock; returns the new value.

        Raises:
            KeyError: the key is not in 1..KEYS.
        """
        shard = self.shard_of(key)
        if key not in shard.counters:
            raise KeyError(key)
        hold_s = self.config.hold_ms / 1000
        self._count(handlers_running=1, lock_waiters=1)
        try:
            asked = time.perf_counter_ns()
            with shard.lock:
                got = time.perf_counter_ns()
                self._count(lock_waiters=-1, lock_holders=1)
                value = shard.counters[key]
                if hold_s > 0:
                    time.sleep(hold_s)  # I/O under the lock (releases the GIL, not the lock)
                # The write and its request's counters at once, as a stats reader sees them:
                # increments per request are exactly 1 over any window.
                with self._stats_lock:
                    shard.counters[key] = value + 1
                    self.requests += 1
                    self.lock_wait_ns += got - asked
                    self.lock_hold_ns += time.perf_counter_ns() - got
                    self.lock_holders -= 1
            return value + 1
        finally:
            self._count(handlers_running=-1)

    def read(self, key: int) -> int:
        """One counter's value, read under its shard's lock (no hold)."""
        shard = self.shard_of(key)
        with shard.lock:
            return shard.counters[key]

    def total(self) -> int:
        """Sum of all counters, without taking the shard locks.

        A stats reader must not queue behind the contention it measures. Updates only
        replace values of existing keys, so the dicts never resize and iterating them
        while threads write is safe; every write happens under the statistics lock, so a
        reader holding it sees each write with its request.
        """
        return sum(sum(shard.counters.values()) for shard in self.shards)

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures (read from any thread; also served on ``LAB_STATS_PORT``,
        ``targets.statsport``)."""
        with self._stats_lock:
            increments = self.total()
            return {
                "requests": self.requests,
                "increments": increments,
                "lock_wait_us": self.lock_wait_ns // 1000,
                "lock_hold_us": self.lock_hold_ns // 1000,
                "gauges": {
                    "lock_waiters": self.lock_waiters,
                    "lock_holders": self.lock_holders,
                    "handlers_running": self.handlers_running,
                },
                "info": {
                    "lock_mode": self.config.lock_mode,
                    "shards": str(self.config.lock_count),
                    "hold_ms": f"{self.config.hold_ms:g}",
                    "threadpool_tokens": str(self.config.threadpool_tokens),
                },
            }


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, SharedState]]:
    """Read the config, size the thread pool, create the state; bad settings fail startup."""
    try:
        config = SharedStateConfig.from_env()
    except ValueError as exc:
        print(f"shared_state: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    anyio.to_thread.current_default_thread_limiter().total_tokens = config.threadpool_tokens
    state = SharedState(config)
    with serve_stats(state.stats):
        yield {"shared_state": state}


def _key(request: Request) -> int | None:
    try:
        return int(request.path_params["key"])
    except ValueError:
        return None


def increment(request: Request) -> Response:
    """Sync on purpose: it runs in the thread pool, so updates really overlap."""
    state: SharedState = request.state.shared_state
    key = _key(request)
    try:
        value = state.increment(key) if key is not None else None
    except KeyError:
        value = None
    if value is None:
        return JSONResponse({"error": "no such key", "keys": state.config.keys}, status_code=404)
    return JSONResponse({"key": key, "value": value})


def read(request: Request) -> Response:
    state: SharedState = request.state.shared_state
    key = _key(request)
    try:
        value = state.read(key) if key is not None else None
    except KeyError:
        value = None
    if value is None:
        return JSONResponse({"error": "no such key", "keys": state.config.keys}, status_code=404)
    return JSONResponse({"key": key, "value": value})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    # Async, so a stats read never waits for a thread-pool token behind the load.
    return JSONResponse(request.state.shared_state.stats())


app = Starlette(
    routes=[
        Route("/items/{key}/incr", increment, methods=["POST"]),
        Route("/items/{key}", read),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
