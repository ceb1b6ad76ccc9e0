"""A service with a fixed, known capacity: the load-shedding and saturation experiments' target.

``GET /work`` needs one of ``SLOTS`` slots of a scarce resource (think: a database
connection, a licence, a GPU) and holds it for a service time of ``SERVICE_MS``
milliseconds (an ``asyncio.sleep``, so the capacity does not depend on how busy the
machine's CPU is). The capacity is therefore known in advance::

    capacity = SLOTS / (SERVICE_MS / 1000) requests per second   (2 / 0.020 s = 100 req/s)

A request that finds every slot taken waits in a FIFO queue. What happens when the
queue is long is the policy under test:

- ``MAX_QUEUE`` unset or ``none``: **unbounded** queueing. Above capacity the queue, and
  every request's latency, grows for as long as the overload lasts.
- ``MAX_QUEUE=N``: **load shedding**. When N requests are already waiting, a new one is
  answered ``503 Service Unavailable`` (with ``Retry-After``) at once, without waiting:
  the requests that are served wait at most N / SLOTS service times.

``SERVICE_DIST`` is ``fixed`` (every request takes exactly SERVICE_MS) or ``exponential``
(service times drawn from an exponential distribution with mean SERVICE_MS, from a
seeded generator): real services vary, and that variation is what makes queues form
*before* a service is fully busy (the saturation experiment's gradual "hockey stick").

``GET /stats`` returns counters (``requests``, ``served``, ``shed``), gauges sampled by the
lab every second (``in_flight`` = waiting + in service, ``queued``, ``busy`` slots) and
``info`` (policy, capacity). ``in_flight`` is what Little's law speaks of:
in-flight ≈ throughput × latency. A request is counted when it is answered, with its
outcome (served or shed, or neither when its client went away), so over any window
``served + shed`` never exceeds ``requests`` and per request they add up to 1 unless
clients gave up. Also served on ``LAB_STATS_PORT`` (``targets.statsport``).

Run: ``SLOTS=2 SERVICE_MS=20 MAX_QUEUE=4 uvicorn targets.shedding:app --port 8000``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import serve_stats

SEED = 20240601


@dataclass(frozen=True)
class SheddingConfig:
    """Settings read from the environment when the app starts."""

    slots: int = 2
    service_ms: float = 20.0
    service_dist: str = "fixed"
    max_queue: int | None = None
    """Requests allowed to wait for a slot; None: unbounded."""

    @property
    def capacity_rps(self) -> float:
        """Requests per second the resource can serve when every slot is always busy."""
        return self.slots * 1000.0 / self.service_ms

    @property
    def policy(self) -> str:
        return "unbounded" if self.max_queue is None else "shed"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SheddingConfig:
        """Read and validate the settings; raise ValueError with a readable message."""
        env = dict(os.environ if env is None else env)
        try:
            slots = int(env.get("SLOTS", "2"))
            service_ms = float(env.get("SERVICE_MS", "20"))
        except ValueError:
            raise ValueError(f"SLOTS must be an integer and SERVICE_MS a number, got "
                             f"{env.get('SLOTS')!r} and {env.get('SERVICE_MS')!r}") from None
        if slots < 1 or not service_ms > 0:
            raise ValueError(f"SLOTS must be >= 1 and SERVICE_MS > 0, got {slots} and {service_ms}")
        dist = env.get("SERVICE_DIST", "fixed").strip().lower()
        if dist not in ("fixed", "exponential"):
            raise ValueError(f"SERVICE_DIST must be 'fixed' or 'exponential', got {dist!r}")
        raw_queue = env.get("MAX_QUEUE", "none").strip().lower()
        max_queue: int | None = None
        if raw_queue not in ("", "none", "unbounded"):
            try:
                max_queue = int(raw_queue)
            except ValueError:
                raise ValueError(f"MAX_QUEUE must be 'none' or an integer >= 0, got {raw_queue!r}") from None
            if max_queue < 0:
                raise ValueError(f"MAX_QUEUE must be 'none' or an integer >= 0, got {raw_queue!r}")
        return cls(slots=slots, service_ms=service_ms, service_dist=dist, max_queue=max_queue)


@dataclass
class Resource:
    """``slots`` slots handed out first come, first served; an optional cap on the queue.

    Single-threaded (one event loop), so plain integers need no lock.
    """

    config: SheddingConfig
    busy: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    totals: tuple[int, int, int] = (0, 0, 0)
    """Requests answered (or given up by their client), served, shed."""
    in_flight: int = 0

    def count(self, served: int = 0, shed: int = 0) -> None:
        """Count one answered request with its outcome, at once (a stats reader in another
        thread sees all of it or none)."""
        self.totals = (self.totals[0] + 1, self.totals[1] + served, self.totals[2] + shed)

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures (read from any thread)."""
        requests, served, shed = self.totals  # one tuple: replaced whole, never half-written
        config = self.config
        return {
            "requests": requests,
            "served": served,
            "shed": shed,
            "gauges": {"in_flight": self.in_flight, "queued": len(self.waiters), "busy": self.busy},
            "info": {
                "policy": config.policy,
                "capacity_rps": f"{config.capacity_rps:g}",
                "slots": str(config.slots),
                "service": f"{config.service_dist} {config.service_ms:g} ms",
                "max_queue": "unbounded" if config.max_queue is None else str(config.max_queue),
            },
        }

    def service_time_s(self) -> float:
        mean = self.config.service_ms / 1000.0
        if self.config.service_dist == "exponential":
            return self.rng.expovariate(1.0 / mean)
        return mean

    def try_enter(self) -> asyncio.Future[None] | bool:
        """Take a slot (True), join the queue (a future to await), or be shed (False)."""
        if self.busy < self.config.slots and not self.waiters:
            self.busy += 1
            return True
        limit = self.config.max_queue
        if limit is not None and len(self.waiters) >= limit:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def leave(self) -> None:
        """Give the slot back: straight to the longest-waiting request, if any."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; busy stays the same
                return
        self.busy -= 1

    def abandon(self, waiter: asyncio.Future[None]) -> None:
        """A queued request was cancelled (client gone): drop it, or pass on its slot."""
        if waiter.done() and not waiter.cancelled():
            self.leave()  # it had been handed the slot just before the cancellation
            return
        with contextlib.suppress(ValueError):
            self.waiters.remove(waiter)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Resource]]:
    try:
        config = SheddingConfig.from_env()
    except ValueError as exc:
        print(f"shedding: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    resource = Resource(config)
    with serve_stats(resource.stats):
        yield {"resource": resource}


async def work(request: Request) -> Response:
    """Hold one slot for the service time; queue for it, or be shed when the queue is full."""
    res: Resource = request.state.resource
    entered = res.try_enter()
    if entered is False:
        res.count(shed=1)
        return JSONResponse({"error": "overloaded, try again later", "queued": len(res.waiters)},
                            status_code=503, headers={"Retry-After": "1"})
    res.in_flight += 1
    served = 0
    try:
        if entered is not True:
            try:
                await entered
            except asyncio.CancelledError:
                res.abandon(entered)
                raise
        try:
            await asyncio.sleep(res.service_time_s())
        finally:
            res.leave()
        served = 1
    finally:
        res.in_flight -= 1
        res.count(served=served)
    return JSONResponse({"ok": True})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    res: Resource = request.state.resource
    return JSONResponse(res.stats())


app = Starlette(
    routes=[Route("/work", work), Route("/health", health), Route("/stats", stats)],
    lifespan=lifespan,
)
