"""Replicas of the target behind a lab-started nginx: start, scale, kill, stop.

Each replica is one uvicorn process tree (a `TargetProcess`) on its own loopback port,
told its index in ``LAB_REPLICA_INDEX``. Indexes are never reused within a run, like pod
names: a replica added after one was removed gets the next number, so every figure kept
per replica belongs to one process.

A new replica receives traffic only once its ready path answers (it joins the balancer's
upstream then, by a reload). A replica taken away leaves the upstream first (a reload),
finishes the requests it holds (its ``in_flight`` gauge falls to 0, or ``drain_s``
passes), then is stopped. A replica killed by a fault, or that exits on its own, leaves
the upstream at once, as a Kubernetes endpoint of a dead pod does, and a new replica (the
next number) is started in its place, as a ReplicaSet keeps its count: the engine calls
``scale_to`` with the count it wants every second. A replica that fails to start holds
further starts back 1, 2, 4 ... 16 s (a crash loop backs off).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import httpx
import psutil

from lab.errors import ServiceError, TargetError
from lab.spec import BalancerSpec, TargetSpec
from lab.topology.activator import CONTROL
from lab.topology.balancer import NginxBalancer
from lab.topology.services import find_components
from lab.topology.targets import StatsReader, TargetProcess

REPLICA_INDEX_ENV = "LAB_REPLICA_INDEX"
"""The environment variable that tells a replica its index (0, 1, 2, ...)."""

ReplicaState = Literal["starting", "ready", "draining", "stopped", "killed", "exited", "failed"]


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica as the run reports it."""

    index: int
    pid: int | None
    address: str
    """``127.0.0.1:PORT``, as nginx's ``$upstream_addr`` names it."""
    state: ReplicaState
    started_s: float
    """When the lab started it, in seconds since the run's clock began (negative: before
    the load)."""
    ready_s: float | None = None
    """When its ready path first answered."""
    ended_s: float | None = None
    """When it was stopped, killed or found exited."""


class _Replica:
    def __init__(self, index: int, process: TargetProcess, started_s: float) -> None:
        self.index = index
        self.process = process
        self.stats = StatsReader(process.url, process.spec.stats_path, stats_port=process.stats_port)
        self.info = ReplicaInfo(index, None, f"127.0.0.1:{process.port}", "starting", started_s)

    def set(self, **changes: object) -> None:
        self.info = replace(self.info, **changes)  # type: ignore[arg-type]


class Fleet:
    """The replicas of one run and the nginx in front of them.

    Use ``await start(n)``, then ``scale_to``/``kill`` while the load runs, and always
    ``await stop()``.

    Args:
        target: the variant's ``[target]`` (an ``app`` target).
        balancer: the variant's ``[balancer]``.
        extra_env: the services' URLs, for every replica.
        clock: seconds since the run's clock began (the engine's ``elapsed``).
        on_change: called with every replica whose state changed.
    """

    def __init__(self, target: TargetSpec, balancer: BalancerSpec, extra_env: dict[str, str],
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[ReplicaInfo], None] | None = None,
                 activator: bool = False) -> None:
        self.target = target
        self.spec = balancer
        self.extra_env = dict(extra_env)
        self.clock = clock
        self.on_change = on_change or (lambda _info: None)
        self._replicas: dict[int, _Replica] = {}
        self._next_index = 0
        self._lock = asyncio.Lock()
        """Held while the upstream changes: one reload at a time, in order."""
        self._tasks: set[asyncio.Task[None]] = set()
        nginx = find_components()["nginx"]
        self._missing = None if nginx.usable and nginx.path else str(nginx.problem)
        # Made now, so its port (the run's base URL) is known before anything starts.
        self.nginx: NginxBalancer | None = None if self._missing else NginxBalancer(
            str(nginx.path), method=balancer.method, hash_key=balancer.hash_key,
            keepalive=balancer.keepalive, host=target.host)
        self._nginx_started = False
        self.activator: TargetProcess | None = TargetProcess(TargetSpec(
            app="lab.topology.activator:app", ready_path=f"{CONTROL}/health", stats_path="",
            env={"ACTIVATOR_TIMEOUT_S": f"{target.ready_timeout + 10:g}"})) if activator else None
        """Holds requests while no replica is ready (scale from zero); see ``lab.topology.activator``."""
        self._control = httpx.AsyncClient(timeout=5.0, trust_env=False)
        self.problems: list[str] = []
        """Replicas that failed to start during the run, one line each."""
        self._failed_starts = 0
        self._retry_at = 0.0
        """After a replica failed to start, no new one starts before this (monotonic):
        1, 2, 4 ... 16 s after each failure in a row, as Kubernetes backs off a crash loop."""

    # ---------------------------------------------------------------- reading

    @property
    def url(self) -> str:
        """The balancer's URL (where the load goes); empty when nginx is missing."""
        return self.nginx.url if self.nginx is not None else ""

    @property
    def balancer_pid(self) -> int | None:
        return self.nginx.pid if self.nginx is not None else None

    @property
    def replicas(self) -> list[ReplicaInfo]:
        """Every replica of the run so far, by index (stopped ones included)."""
        return [r.info for _, r in sorted(self._replicas.items())]

    def live(self) -> list[ReplicaInfo]:
        """Replicas that are starting, ready or draining (they have a process)."""
        return [r.info for r in self._live()]

    def _live(self) -> list[_Replica]:
        return [r for _, r in sorted(self._replicas.items())
                if r.info.state in ("starting", "ready", "draining")]

    @property
    def ready(self) -> int:
        return sum(1 for r in self._replicas.values() if r.info.state == "ready")

    @property
    def pids(self) -> dict[int, int]:
        """Index → root pid of every replica with a process."""
        return {r.index: r.process.pid for r in self._live() if r.process.pid is not None}

    def address_index(self) -> dict[str, int]:
        """``127.0.0.1:PORT`` → replica index, for every replica the run had."""
        return {r.info.address: r.index for r in self._replicas.values()}

    async def read_stats(self) -> dict[int, dict[str, object]]:
        """Index → the stats of every ready or draining replica, read side by side (``{}``
        for one that did not answer)."""
        live = [r for r in self._live() if r.info.state != "starting"]
        results = await asyncio.gather(*(r.stats.read() for r in live))
        return {r.index: data for r, data in zip(live, results, strict=True)}

    # ---------------------------------------------------------------- changing

    async def start(self, n: int) -> None:
        """Start ``n`` replicas side by side, then nginx in front of the ready ones.

        Raises:
            ServiceError: nginx is missing or failed to start.
            TargetError: a replica failed to start (its stderr in the message).
        """
        if self.nginx is None:
            raise ServiceError(str(self._missing))
        started = [self._new_replica() for _ in range(n)]
        booting = [self._boot(r) for r in started]
        if self.activator is not None:
            booting.append(self.activator.start())
        results = await asyncio.gather(*booting, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for r in started:
            self._mark(r, "ready", ready_s=round(self.clock(), 3))
        self._nginx_started = True
        await self.nginx.start(await self._routes())

    def _new_replica(self) -> _Replica:
        index = self._next_index
        self._next_index += 1
        env = {**self.extra_env, REPLICA_INDEX_ENV: str(index)}
        process = TargetProcess(self.target, extra_env=env)
        replica = _Replica(index, process, round(self.clock(), 3))
        self._replicas[index] = replica
        self.on_change(replica.info)
        return replica

    async def _boot(self, replica: _Replica) -> None:
        try:
            await replica.process.start()
        except TargetError as exc:
            self._mark(replica, "failed", ended_s=round(self.clock(), 3))
            raise TargetError(f"replica {replica.index}: {exc}") from None
        replica.set(pid=replica.process.pid)

    def _mark(self, replica: _Replica, state: ReplicaState, **changes: object) -> None:
        replica.set(state=state, **changes)
        self.on_change(replica.info)

    async def _routes(self) -> list[str]:
        """Where nginx sends requests now: the ready replicas; with none ready, the
        activator (told which replica to hand its held requests to, or none)."""
        ready = [r.info.address for r in self._live() if r.info.state == "ready"]
        if self.activator is None:
            return ready
        # The activator learns of a ready replica before nginx does, so the requests it
        # holds go on at once; with none, it holds what nginx sends it from now on.
        await self._control.put(f"{self.activator.url}{CONTROL}/upstream",
                                content=ready[0] if ready else "")
        return ready or [f"127.0.0.1:{self.activator.port}"]

    async def activator_stats(self) -> dict[str, int]:
        """``waiting`` and ``arrived`` of the activator (``{}`` without one, or when it
        did not answer)."""
        if self.activator is None:
            return {}
        try:
            data = (await self._control.get(f"{self.activator.url}{CONTROL}/stats")).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return {k: int(v) for k, v in data.items() if isinstance(v, int)}

    async def _apply_upstream(self) -> None:
        assert self.nginx is not None
        await self.nginx.reload(await self._routes())

    def scale_to(self, n: int, drain_s: float = 5.0) -> None:
        """Begin moving to ``n`` replicas (starting and ready ones count; draining ones do
        not): start new ones, or take the newest away. Returns at once; the change goes on
        in the background (see ``on_change``)."""
        current = [r for r in self._live() if r.info.state in ("starting", "ready")]
        if n > len(current):
            if time.monotonic() < self._retry_at:
                return
            for _ in range(n - len(current)):
                self._spawn(self._add(self._new_replica()))
        elif n < len(current):
            # The newest go first: they hold the fewest long-lived connections and sessions.
            for replica in sorted(current, key=lambda r: r.index)[n:]:
                self._spawn(self._remove(replica, drain_s))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, replica: _Replica) -> None:
        try:
            await self._boot(replica)
        except TargetError as exc:
            self.problems.append(str(exc))
            self._failed_starts += 1
            self._retry_at = time.monotonic() + min(2.0 ** (self._failed_starts - 1), 16.0)
            with contextlib.suppress(Exception):
                await replica.process.stop()
            return
        self._failed_starts = 0
        if replica.info.state != "starting":  # removed while it started
            return
        async with self._lock:
            self._mark(replica, "ready", ready_s=round(self.clock(), 3))
            await self._apply_upstream()

    async def _remove(self, replica: _Replica, drain_s: float) -> None:
        was_ready = replica.info.state == "ready"
        self._mark(replica, "draining")
        if was_ready:
            async with self._lock:
                await self._apply_upstream()
            deadline = time.monotonic() + drain_s
            while time.monotonic() < deadline and not replica.process.exited:
                data = await replica.stats.read()
                gauges = data.get("gauges") if isinstance(data, dict) else None
                if isinstance(gauges, dict) and gauges.get("in_flight") == 0:
                    break
                await asyncio.sleep(0.1)
        await replica.process.stop()
        await replica.stats.close()
        self._mark(replica, "stopped", ended_s=round(self.clock(), 3))

    async def kill(self, index: int) -> str | None:
        """SIGKILL replica ``index``'s whole tree now (no drain), then take it out of the
        upstream. Returns why nothing was killed, or None when it was."""
        replica = self._replicas.get(index)
        if replica is None:
            return f"replica {index} does not exist (yet)"
        if replica.info.state not in ("starting", "ready", "draining"):
            return f"replica {index} had already ended ({replica.info.state})"
        pid = replica.process.pid
        if pid is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for proc in [*root.children(recursive=True), root]:
                    with contextlib.suppress(psutil.Error):
                        proc.send_signal(signal.SIGKILL)
        self._mark(replica, "killed", ended_s=round(self.clock(), 3))
        async with self._lock:
            await self._apply_upstream()
        await replica.process.stop()  # reaps it
        await replica.stats.close()
        return None

    async def check_exited(self) -> list[ReplicaInfo]:
        """Replicas found exited on their own since the last call: marked ``exited`` and
        taken out of the upstream."""
        gone = [r for r in self._live() if r.info.state != "starting" and r.process.exited]
        for replica in gone:
            self._mark(replica, "exited", ended_s=round(self.clock(), 3))
        if gone:
            async with self._lock:
                await self._apply_upstream()
            for replica in gone:
                await replica.process.stop()
                await replica.stats.close()
        return [r.info for r in gone]

    async def stop(self) -> None:
        """Stop nginx and every replica. Safe to call twice, and after a failed start."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nginx is not None and self._nginx_started:
            with contextlib.suppress(Exception):
                await self.nginx.stop()
        live = [r for r in self._replicas.values() if r.process.proc is not None]
        stopping = [r.process.stop() for r in live]
        if self.activator is not None and self.activator.proc is not None:
            stopping.append(self.activator.stop())
        await asyncio.gather(*stopping, return_exceptions=True)
        await self._control.aclose()
        await asyncio.gather(*(r.stats.close() for r in self._replicas.values()),
                             return_exceptions=True)
        now = round(self.clock(), 3)
        for r in self._replicas.values():
            if r.info.state in ("starting", "ready", "draining"):
                self._mark(r, "stopped", ended_s=now)


_MEAN_GAUGES = ("utilization",)
"""Gauges that are fractions per replica: the fleet's is their mean, not their sum."""


class FleetStats:
    """The target's stats for a run with replicas: every replica's, combined.

    Counters are summed over every replica the run had, each at its latest reading (a
    replica that has ended keeps its last one, so a sum never falls); gauges over the
    replicas read now: fractions (``utilization``) averaged, levels (``in_flight``,
    ``busy``...) summed. ``info`` keeps what every replica says alike. Reads like
    `StatsReader`.
    """

    def __init__(self, fleet: Fleet, path: str | None) -> None:
        self.fleet = fleet
        self.absent = not path
        self._latest: dict[int, dict[str, object]] = {}

    async def read(self, fresh: bool = False) -> dict[str, object]:
        if self.absent:
            return {}
        now = await self.fleet.read_stats()
        for index, data in now.items():
            if data:
                self._latest[index] = data
        if not self._latest:
            return {}
        counters: dict[str, float] = {}
        for data in self._latest.values():
            for key, value in data.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    counters[key] = counters.get(key, 0) + value
        gauges: dict[str, list[float]] = {}
        for data in now.values():
            raw = data.get("gauges") if data else None
            if isinstance(raw, dict):
                for name, value in raw.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        gauges.setdefault(str(name), []).append(float(value))
        out: dict[str, object] = dict(counters)
        if gauges:
            out["gauges"] = {name: (sum(v) / len(v) if name in _MEAN_GAUGES else sum(v))
                             for name, v in gauges.items()}
        infos = [d.get("info") for d in self._latest.values()]
        if infos and all(isinstance(i, dict) for i in infos):
            # What every replica says alike (its mode, its slots); a replica's own pid or
            # index is no figure of the service.
            first = infos[0]
            assert isinstance(first, dict)
            common = {k: v for k, v in first.items()
                      if all(isinstance(i, dict) and i.get(k) == v for i in infos[1:])}
            if len(infos) > 1:
                common = {k: v for k, v in common.items() if k not in ("pid", "replica")}
            if common:
                out["info"] = common
        return out

    async def close(self) -> None:
        """Nothing of its own to close: the replicas' readers close with the fleet."""
