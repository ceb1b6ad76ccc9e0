"""Runs one RunPlan: owns the target, the generator workers and the sampler; emits events.

The engine knows nothing of Textual or of the database: the store recorder, the headless
progress printer and the TUI are listeners on the events it emits (``lab.events``).
Every process it starts is ended on every exit path before ``RunFinished`` is emitted,
so a listener that sees ``RunFinished`` knows no child of that run is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import platform
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

from lab import __version__
from lab.analysis.bound import BoundWatch, generator_bound
from lab.analysis.offered import offered_load
from lab.analysis.summary import min_measured_for, planned_measured_s, summarise, too_short_note
from lab.errors import GeneratorError, ServiceError, TargetError
from lab.events import (
    ErrorSample,
    Event,
    FaultApplied,
    GeneratorBound,
    GeneratorsReady,
    HostFacts,
    IntervalStats,
    Listener,
    LoadChanged,
    ReplicaChanged,
    ReplicaCount,
    ReplicaTraffic,
    ResourceSample,
    RunFinished,
    RunStarted,
    RunStatus,
    ScaleDecision,
    ServicesReady,
    TargetReady,
    TargetSample,
)
from lab.figures import CpuReading, IntervalCounts, Summary
from lab.limits import fd_budget_problem
from lab.load.wire import Done, IntervalReport, SetLevel, Start, Stop, WorkerConfig
from lab.monitor import ResourceSampler
from lab.plan import RunPlan, generator_worker_cap
from lab.pool import Exited, GeneratorPool, IntervalMerger, Malformed

if TYPE_CHECKING:
    from lab.cluster.pool import ClusterPool
from lab.topology.fleet import Fleet, FleetStats, ReplicaInfo
from lab.topology.services import ServiceSet, remove_orphaned_dirs
from lab.topology.targets import NOTHING_LISTENS_S, StatsReader, TargetProcess, wait_ready
from lab.topology.traffic import TrafficSplitter

FINISH_SLACK_S = 15.0
"""How long past its planned end plus the request deadline a run may take to wrap up."""
LOG_FLUSH_S = 1.5
"""How long after an interval's end the balancer's access log is read for it: nginx
writes its buffered lines at least once a second."""
STATS_ON_TIME_S = 0.25
"""A gauge reading sent and answered within this of its schedule is stamped with it (the
middle of the interval it describes); a later one with the moment halfway between sending
and answer."""


def host_facts() -> HostFacts:
    return HostFacts(
        cores=psutil.cpu_count() or 1,
        memory_bytes=int(psutil.virtual_memory().total),
        python=platform.python_version(),
        platform=platform.platform(),
    )


class RunControl:
    """Steers a running run from outside: stop it, or change its load level.

    Safe to use from the event loop the run executes in (the CLI's signal handler, the
    TUI's key bindings).
    """

    def __init__(self) -> None:
        self.stop_requested = asyncio.Event()
        self.stop_reason = "interrupted by user"
        self._levels: asyncio.Queue[float] = asyncio.Queue()

    def stop(self, reason: str = "interrupted by user") -> None:
        """End the run now; it is stored as aborted with the data measured so far."""
        if not self.stop_requested.is_set():
            self.stop_reason = reason
        self.stop_requested.set()

    def set_level(self, total: float) -> None:
        """Hold VUs (closed model) or the arrival rate (open model) at ``total`` from now."""
        self._levels.put_nowait(float(total))

    def take_levels(self) -> list[float]:
        """The level changes asked for since the last call, oldest first."""
        levels = []
        while not self._levels.empty():
            levels.append(self._levels.get_nowait())
        return levels


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended."""

    run_key: str
    status: RunStatus
    reason: str | None
    summary: Summary | None
    target_stats: dict[str, Any] = field(default_factory=dict)


class _Emitter:
    def __init__(self, listeners: Sequence[Listener]) -> None:
        self.listeners = list(listeners)
        self.error: str | None = None

    def __call__(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:  # a failing subscriber must not orphan processes
                if self.error is None:
                    self.error = f"listener {type(listener).__name__} failed: {exc}"


def _counts(iv: IntervalStats) -> IntervalCounts:
    return IntervalCounts(
        t_s=iv.t_s, duration_s=iv.duration_s, ok=iv.ok, errors=iv.errors, dropped=iv.dropped,
        interrupted=iv.interrupted, bytes=iv.bytes, errors_by_class=iv.errors_by_class,
        histogram=iv.histogram, histogram_all=iv.histogram_all,
        histogram_service=iv.histogram_service,
        generator_cpu_percent=iv.generator_cpu_percent, histogram_lag=iv.histogram_lag,
        generator_cpu_by_worker=iv.generator_cpu_by_worker,
        histogram_lag_by_worker=iv.histogram_lag_by_worker,
    )


def _reading(s: ResourceSample) -> CpuReading:
    return CpuReading(t_s=s.t_s, role=s.role, pid=s.pid, cpu_percent=s.cpu_percent,
                      cpu_seconds=s.cpu_seconds, rss_bytes=s.rss_bytes)


def window_stats(start: dict[str, Any], end: dict[str, Any],
                 samples: Sequence[TargetSample] = (), window_start_s: float = 0.0) -> dict[str, Any]:
    """The target's figures over the measured window, from its stats path.

    Convention (documented in the README, "Target stats"): top-level numbers are
    monotonic counters, reported as ``end − start`` (``end`` alone when ``start`` lacks
    them); ``gauges`` are levels, summarised from ``samples`` taken at or after
    ``window_start_s`` as ``{"mean", "max", "last"}``; ``info`` is copied. With a
    ``requests`` counter, ``per_request`` holds every other counter divided by it.
    Other keys are copied as the target gave them.
    """
    out: dict[str, Any] = {}
    counters: dict[str, float] = {}
    for key, value in end.items():
        if key in ("gauges", "info", "per_request"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            base = start.get(key)
            if isinstance(base, (int, float)) and not isinstance(base, bool):
                value = value - base
            counters[key] = value
            out[key] = round(value, 6) if isinstance(value, float) else value
        else:
            out[key] = value
    if isinstance(end.get("info"), dict):
        out["info"] = dict(end["info"])
    requests = counters.get("requests")
    if isinstance(requests, (int, float)) and requests > 0:
        out["per_request"] = {k: round(v / requests, 4) for k, v in counters.items()
                              if k != "requests"}
    series: dict[str, list[float]] = {}
    for sample in samples:
        if sample.t_s + 1e-9 < window_start_s:
            continue
        for name, value in sample.gauges.items():
            series.setdefault(name, []).append(value)
    if series:
        out["gauges"] = {name: {"mean": round(sum(v) / len(v), 4), "max": round(max(v), 4),
                                "last": round(v[-1], 4)} for name, v in series.items()}
    return out


def _gauges(data: dict[str, Any]) -> dict[str, float]:
    raw = data.get("gauges")
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in raw.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


async def run_plan(
    plan: RunPlan,
    listeners: Sequence[Listener] = (),
    control: RunControl | None = None,
    sample_every_s: float = 1.0,
) -> RunOutcome:
    """Execute one run and report it through ``listeners``.

    Never raises for a failed run (the outcome says ``failed`` with a reason); only
    cancellation propagates, after cleanup. ``RunFinished`` is emitted last, always.
    """
    control = control or RunControl()
    emit = _Emitter(listeners)
    run = _Run(plan, emit, control, sample_every_s)
    return await run.execute()


class _Run:
    def __init__(self, plan: RunPlan, emit: _Emitter, control: RunControl,
                 sample_every_s: float) -> None:
        self.plan = plan
        self.emit = emit
        self.control = control
        self.sample_every_s = sample_every_s
        self.key = uuid.uuid4().hex
        self.target: TargetProcess | None = None
        self.fleet: Fleet | None = None
        self.splitter: TrafficSplitter | None = None
        self.replica_changes: list[ReplicaInfo] = []
        """Replica changes before the load began, emitted once t0 is known."""
        self.desired_replicas = plan.replicas
        self.services: ServiceSet | None = None
        self.stats: StatsReader | FleetStats | None = None
        self.gauge_samples: list[TargetSample] = []
        self.pool: GeneratorPool | ClusterPool | None = None
        self.sampler: ResourceSampler | None = None
        self.samples: list[ResourceSample] = []
        self.merger = IntervalMerger(self.key, plan.load.workers or 1)
        self.errors: dict[tuple[str, int | None], list[Any]] = {}
        self.t0 = 0.0
        self.base_url = plan.target.url or ""
        self.stats_start: dict[str, Any] = {}
        self.stats_end: dict[str, Any] = {}
        self.stats_last: dict[str, Any] = {}
        self.last_stage = -1
        self.level_override: float | None = None
        self.bound = BoundWatch(plan.load.warmup)
        self.user_levels: list[tuple[float, float]] = []
        """(t_s, level) of each level a user set during the run."""

    def elapsed(self) -> float:
        return time.monotonic() - self.t0 if self.t0 else 0.0

    async def execute(self) -> RunOutcome:
        status: RunStatus = "completed"
        reason: str | None = None
        self.emit(RunStarted(self.key, self.plan, time.time(), host_facts(), __version__))
        try:
            status, reason = await self._run()
        except asyncio.CancelledError:
            status, reason = "aborted", "cancelled"
            await asyncio.shield(self._cleanup())
            self._finish(status, reason)
            raise
        except Exception as exc:  # a bug or an OS failure: keep the data, say why
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
        await asyncio.shield(self._cleanup())
        if self.emit.error and status == "completed":
            status, reason = "failed", self.emit.error
        return self._finish(status, reason)

    async def _run(self) -> tuple[RunStatus, str | None]:
        plan, control = self.plan, self.control
        cores = psutil.cpu_count() or 1
        if plan.target.app and plan.target.cpus and plan.target.cpus > cores:
            return "failed", (f"target.cpus = {plan.target.cpus} asks for more CPU cores than this "
                              f"machine has ({cores})")
        # What a lab killed mid-run could not remove (PostgreSQL's data directory).
        with contextlib.suppress(OSError):
            await asyncio.to_thread(remove_orphaned_dirs)
        self.services = ServiceSet(plan.services, plan.target.app_dir)
        if self.services.wanted:
            try:
                if not await self._until_stopped(self.services.start()):
                    return "aborted", control.stop_reason
            except ServiceError as exc:
                return "failed", str(exc)
            self.emit(ServicesReady(self.key, {r.name: r.url for r in self.services.running},
                                    list(self.services.notes)))
        load = plan.load
        problem = fd_budget_problem(load)  # also raises the limit the workers inherit
        if problem:
            return "failed", problem
        if plan.target.app and plan.balancer is not None:
            self.fleet = Fleet(plan.target, plan.balancer, self.services.env,
                               on_change=self._on_replica,
                               activator=plan.autoscale is not None and plan.autoscale.min_replicas == 0)
            self.base_url = self.fleet.url
        elif plan.target.app:
            self.target = TargetProcess(plan.target, extra_env=self.services.env)
            self.base_url = self.target.url
        config = WorkerConfig(base_url=self.base_url, load=load.model_dump(mode="json"), seed=1,
                              interval_s=1.0)
        if load.cluster:
            from lab.cluster.address import parse_cluster
            from lab.cluster.pool import ClusterPool

            cap = generator_worker_cap(load)
            self.pool = ClusterPool(config, parse_cluster(load.cluster), self.key,
                                    cap[0] if cap else None)
        else:
            self.pool = GeneratorPool(config, load.workers or 1)
        # The workers import while the target starts (they touch it only on "start").
        pool_start = asyncio.ensure_future(self.pool.start())
        try:
            if self.fleet is not None:
                t_start = time.monotonic()
                try:
                    if not await self._until_stopped(self.fleet.start(plan.replicas)):
                        return "aborted", control.stop_reason
                except (TargetError, ServiceError) as exc:
                    return "failed", str(exc)
                self.emit(TargetReady(self.key, self.base_url, self.fleet.balancer_pid,
                                      time.monotonic() - t_start))
            elif self.target is not None:
                try:
                    if not await self._until_stopped(self.target.start()):
                        return "aborted", control.stop_reason
                except TargetError as exc:
                    return "failed", str(exc)
                self.emit(TargetReady(self.key, self.base_url, self.target.pid, self.target.startup_s))
            else:
                t_wait = time.monotonic()

                async def stopped() -> str | None:
                    return "stopped" if control.stop_requested.is_set() else None

                problem = await wait_ready(self.base_url, plan.target.ready_path,
                                           plan.target.ready_timeout, stopped,
                                           nothing_there_s=NOTHING_LISTENS_S)
                if problem == "stopped":
                    return "aborted", control.stop_reason
                if problem:
                    return "failed", f"target {problem}"
                self.emit(TargetReady(self.key, self.base_url, None, time.monotonic() - t_wait))
            try:
                if not await self._until_stopped(asyncio.shield(pool_start)):
                    return "aborted", control.stop_reason
            except GeneratorError as exc:
                return "failed", str(exc)
        finally:
            if not pool_start.done():
                pool_start.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pool_start
        self.merger = IntervalMerger(self.key, self.pool.workers)
        self.bound.labels = {g.index: g.label for g in self.pool.generators}
        self.emit(GeneratorsReady(self.key, self.pool.source, self.pool.cluster,
                                  self.pool.scheduler, tuple(self.pool.generators)))
        if plan.target.app and plan.target.cpus and plan.target.cpus < cores:
            # The target has the first cores; the generator keeps off them.
            rest = list(range(plan.target.cpus, cores))
            for pid in self.pool.pids:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).cpu_affinity(rest)
        fleet = self.fleet
        service_pids = dict(self.services.pids)
        if fleet is not None and fleet.activator is not None and fleet.activator.pid is not None:
            service_pids["activator"] = fleet.activator.pid
        self.sampler = ResourceSampler(self.key, self.target.pid if self.target else None,
                                       self.pool.pids, service_pids=service_pids,
                                       replica_pids=(lambda: fleet.pids) if fleet else None,
                                       balancer_pid=fleet.balancer_pid if fleet else None)
        if fleet is not None:
            self.stats = FleetStats(fleet, plan.target.stats_path)
        else:
            self.stats = StatsReader(self.base_url, plan.target.stats_path,
                                     stats_port=self.target.stats_port if self.target else None)
        if load.warmup <= 0:
            self.stats_start = await self.stats.read()
        self.t0 = time.monotonic() + self.pool.start_delay_s
        self.pool.broadcast(Start(t0=self.t0))
        self._sample(0.0)  # priming reading: CPU counters start here
        helpers = [asyncio.create_task(self._sample_loop()),
                   asyncio.create_task(self._stats_loop())]
        if fleet is not None:
            self.splitter = TrafficSplitter(time.time() + (self.t0 - time.monotonic()))
            for info in self.replica_changes:
                self._emit_replica(info)
            self.replica_changes.clear()
            helpers += [asyncio.create_task(self._fleet_loop()),
                        *(asyncio.create_task(self._fault(f.at, f.replica)) for f in plan.faults)]
            if plan.autoscale is not None:
                helpers.append(asyncio.create_task(self._autoscale_loop()))
        try:
            status, reason = await self._consume()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if fleet is not None:
            self._count_replicas(self.elapsed())
        if self.target is None or not self.target.exited:
            # A fresh connection: the loop's may have been cut mid-request when it was
            # cancelled. Failing that, the loop's last good reading is the end.
            self.stats_end = await self.stats.read(fresh=True) or self.stats_last
            self._on_stats(self.stats_end, self.elapsed())
        self._sample(self.elapsed())
        return status, reason

    async def _until_stopped(self, start: Any) -> bool:
        """Await a start-up step unless the run is stopped first (then cancel it).

        Returns:
            True when the step finished; False when the run was stopped.
        Raises:
            Whatever the step raised.
        """
        task = asyncio.ensure_future(start)
        stop_wait = asyncio.create_task(self.control.stop_requested.wait())
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return False
        task.result()
        return True

    def _on_stats(self, data: dict[str, Any], t_s: float) -> None:
        gauges = _gauges(data)
        if gauges:
            sample = TargetSample(self.key, round(t_s, 3), gauges)
            self.gauge_samples.append(sample)
            self.emit(sample)

    async def _stats_loop(self) -> None:
        """Read the target's stats during the run: the counters' baseline at the end of the
        warm-up (its first whole interval; failing that, the next good reading), and the
        gauges in the middle of every interval.

        A gauge reading sent and answered on time (`STATS_ON_TIME_S`) is stamped with the
        middle of its interval, so the interval and stage tables pair it with the
        generator's figures of the same second; at an interval's edge it would describe
        the next one as much as its own."""
        assert self.stats is not None
        every = self.sample_every_s
        warmup = self.plan.load.warmup
        baseline_s = math.ceil(warmup - 1e-9) if warmup > 0 else None
        want_baseline = baseline_s is not None
        k = 1
        while not self.stats.absent:
            mid_s = (k - 0.5) * every
            gauges = baseline_s is None or mid_s < baseline_s
            at_s = mid_s if gauges else float(baseline_s or 0.0)
            await asyncio.sleep(max(0.0, self.t0 + at_s - time.monotonic()))
            sent_s = self.elapsed()
            data = await self.stats.read()
            answered_s = self.elapsed()
            if data:
                self.stats_last = data
                if want_baseline and at_s >= (baseline_s or 0.0) - 1e-9:
                    self.stats_start, want_baseline = data, False
            if not gauges:
                baseline_s = None
                continue
            on_time = answered_s - at_s <= STATS_ON_TIME_S
            self._on_stats(data, at_s if on_time else (sent_s + answered_s) / 2)
            # A read that came back late skips the readings it missed, as the sampler does.
            k = max(k + 1, math.floor(self.elapsed() / every + 0.5) + 1)

    def _sample(self, t_s: float) -> None:
        if self.sampler is None:
            return
        for s in self.sampler.sample(t_s):
            self.samples.append(s)
            self.emit(s)

    async def _sample_loop(self) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self.t0 + k * self.sample_every_s - time.monotonic()))
            self._sample(k * self.sample_every_s)
            # A loop that woke late skips the ticks it missed rather than reading twice in
            # a row (a CPU percent over a few milliseconds is noise, reported as None).
            k = max(k + 1, math.floor(self.elapsed() / self.sample_every_s) + 1)

    def _on_replica(self, info: ReplicaInfo) -> None:
        if not self.t0:
            self.replica_changes.append(info)
        else:
            self._emit_replica(info)

    def _emit_replica(self, info: ReplicaInfo) -> None:
        def rel(mono: float | None) -> float | None:
            return None if mono is None else round(mono - self.t0, 3)

        self.emit(ReplicaChanged(self.key, info.index, info.pid, info.address, info.state,
                                 rel(info.started_s) or 0.0, rel(info.ready_s), rel(info.ended_s)))

    def _count_replicas(self, t_s: float) -> None:
        assert self.fleet is not None
        live = self.fleet.live()
        self.emit(ReplicaCount(self.key, round(t_s, 3), self.desired_replicas,
                               sum(1 for r in live if r.state == "ready"),
                               sum(1 for r in live if r.state == "starting"),
                               sum(1 for r in live if r.state == "draining")))

    def _take_traffic(self, final: bool = False) -> None:
        """Hand the balancer's log lines to the splitter and emit the intervals it has
        finished (all of them when ``final``: nginx has stopped and written its log out)."""
        fleet, splitter = self.fleet, self.splitter
        if fleet is None or splitter is None or fleet.nginx is None:
            return
        splitter.add(fleet.nginx.take_log(), fleet.address_index())
        before = None if final else self.elapsed() - LOG_FLUSH_S
        for sl in splitter.take(before):
            self.emit(ReplicaTraffic(self.key, sl.t_s, sl.duration_s, sl.replica, sl.requests,
                                     sl.errors, sl.histogram))

    async def _fleet_loop(self) -> None:
        """Once an interval: the replicas' traffic, the replica count, and replicas that
        exited on their own (taken out of the balancer)."""
        assert self.fleet is not None
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self.t0 + k * self.sample_every_s - time.monotonic()))
            await self.fleet.check_exited()
            # A killed or crashed replica is replaced, as a ReplicaSet keeps its count.
            self.fleet.scale_to(self.desired_replicas, self.plan.autoscale.drain_timeout
                                if self.plan.autoscale else 5.0)
            self._count_replicas(k * self.sample_every_s)
            self._take_traffic()
            k = max(k + 1, math.floor(self.elapsed() / self.sample_every_s) + 1)

    async def _autoscale_loop(self) -> None:
        """Every sync period: read each replica's metric, let the HPA rule decide, apply
        the count it wants, and emit the decision with everything it was computed from."""
        from lab.autoscale import Autoscaler, DecisionInput, ReplicaMetric
        from lab.autoscale.stored import inputs_json, settings_of

        fleet, spec = self.fleet, self.plan.autoscale
        assert fleet is not None and spec is not None
        scaler = Autoscaler(settings_of(spec.model_dump(mode="json")))
        every = spec.sync_period
        last_served: dict[int, int] = {}
        last_arrived = 0
        last_t = 0.0
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self.t0 + k * every - time.monotonic()))
            t_s = round(self.elapsed(), 3)
            self._take_traffic()
            stats = await fleet.read_stats() if spec.metric in ("utilization", "in_flight") else {}
            cpu = self._latest_replica_cpu({i.index for i in fleet.live()}) if spec.metric == "cpu" else {}
            # What the balancer's log showed each replica answering so far (-1: none to send
            # them to): the rps metric and the demand signal.
            served = dict(self.splitter.served) if self.splitter is not None else {}
            span = max(t_s - last_t, 1e-3)
            metrics = []
            for info in fleet.live():
                if info.state == "draining":
                    continue  # being deleted: the HPA ignores it
                ready = info.state == "ready"
                value: float | None = None
                if ready and spec.metric in ("utilization", "in_flight"):
                    gauges = stats.get(info.index, {}).get("gauges")
                    raw = gauges.get(spec.metric) if isinstance(gauges, dict) else None
                    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
                        value = max(0.0, float(raw))
                elif ready and spec.metric == "cpu":
                    value = cpu.get(info.index)
                elif ready:
                    value = (served.get(info.index, 0) - last_served.get(info.index, 0)) / span
                metrics.append(ReplicaMetric(info.index, value, ready))
            held = await fleet.activator_stats()
            # Requests wait at the activator (scaled to zero), or nginx answered some with
            # no replica to send them to.
            demand = (held.get("waiting", 0) > 0 or held.get("arrived", 0) > last_arrived
                      or served.get(-1, 0) > last_served.get(-1, 0))
            last_arrived = held.get("arrived", last_arrived)
            last_served, last_t = served, t_s
            inp = DecisionInput(t_s, self.desired_replicas, tuple(metrics), demand)
            d = scaler.decide_input(inp)
            applied = d.desired != self.desired_replicas
            if applied:
                self.desired_replicas = d.desired
                fleet.scale_to(d.desired, spec.drain_timeout)
            self.emit(ScaleDecision(self.key, t_s, d.current, spec.metric, d.metric_value, d.ratio,
                                    d.recommended, d.desired, applied, d.reason, inputs_json(inp)))
            k = max(k + 1, math.floor(self.elapsed() / every) + 1)

    def _latest_replica_cpu(self, wanted: set[int]) -> dict[int, float]:
        """The latest CPU percent (of one core) of each replica in ``wanted``, from the
        sampler's readings, newest first: the scan stops once each has one."""
        out: dict[int, float] = {}
        for sample in reversed(self.samples):
            if len(out) == len(wanted):
                break
            index = sample.detail.get("replica") if sample.role == "replica" else None
            if index in wanted and index not in out and sample.cpu_percent is not None:
                out[index] = sample.cpu_percent
        return out

    async def _fault(self, at_s: float, replica: int) -> None:
        assert self.fleet is not None
        await asyncio.sleep(max(0.0, self.t0 + at_s - time.monotonic()))
        t_s = round(self.elapsed(), 3)
        pid = self.fleet.pids.get(replica)
        why_not = await self.fleet.kill(replica)
        note = why_not or f"replica {replica} killed (SIGKILL of its process tree, pid {pid})"
        self.emit(FaultApplied(self.key, t_s, "kill_replica", replica, why_not is None, note))

    def _on_interval(self, iv: IntervalStats) -> None:
        if iv.stage != self.last_stage and self.level_override is None:
            self.last_stage = iv.stage
            level = self.plan.load.level_at(iv.t_s)
            self.emit(LoadChanged(self.key, iv.t_s, iv.stage, level, "stage"))
        self.emit(iv)
        verdict = self.bound.add(iv)
        if verdict is not None:
            self.emit(GeneratorBound(self.key, round(iv.t_s + iv.duration_s, 3), verdict.reason,
                                     verdict.headline))

    async def _consume(self) -> tuple[RunStatus, str | None]:
        """Relay worker reports until every worker is done, or the run must end early."""
        assert self.pool is not None
        pool, control = self.pool, self.control
        load = self.plan.load
        deadline = self.t0 + load.total_duration_s + load.timeout + FINISH_SLACK_S
        done: set[int] = set()
        status: RunStatus = "completed"
        reason: str | None = None
        stopping = False
        stop_deadline = 0.0
        while len(done) < pool.workers:
            now = time.monotonic()
            if not stopping:
                if control.stop_requested.is_set():
                    status, reason = "aborted", control.stop_reason
                elif self.target is not None and self.target.exited:
                    code = await self.target.died()
                    status = "failed"
                    reason = (f"target exited with code {code} during the run; its stderr: "
                              f"{self.target.stderr_tail() or '(empty)'}")
                elif now > deadline:
                    status, reason = "failed", (
                        f"the load generator fell {FINISH_SLACK_S:g}s behind the planned end of "
                        f"the run; it is overloaded (too many VUs or too high a rate for this "
                        f"machine?)")
                if status != "completed":
                    stopping = True
                    stop_deadline = now + 3.0
                    self._stop_workers()
            elif now > stop_deadline:
                break
            for level in control.take_levels():
                self.level_override = level
                pool.broadcast(SetLevel(value=level))
                at_s = round(self.elapsed(), 3)
                self.user_levels.append((at_s, level))
                self.emit(LoadChanged(self.key, at_s, max(self.last_stage, 0), level, "user"))
            try:
                m = await asyncio.wait_for(pool.messages.get(), 0.1)
            except TimeoutError:
                continue
            msg = m.msg
            if isinstance(msg, IntervalReport):
                for iv in self.merger.add(msg, m.index):
                    self._on_interval(iv)
            elif isinstance(msg, Done):
                done.add(m.index)
                for cls, st, message, n in msg.errors:
                    entry = self.errors.setdefault((cls, st), [message, 0])
                    entry[1] += n
                for iv in self.merger.finished(m.index):
                    self._on_interval(iv)
            elif isinstance(msg, Malformed) and status == "completed":
                # What the worker measured so far is kept; the run cannot vouch for the rest.
                status, reason = "failed", pool.describe_malformed(m.index, msg.error)
                stopping = True
                stop_deadline = time.monotonic() + 3.0
                self._stop_workers()
            elif isinstance(msg, Exited) and m.index not in done:
                done.add(m.index)
                for iv in self.merger.finished(m.index):
                    self._on_interval(iv)
                if status == "completed":
                    status, reason = "failed", pool.describe_exit(m.index)
                    stopping = True
                    stop_deadline = time.monotonic() + 3.0
                    self._stop_workers()
        for iv in self.merger.flush(force=True):
            self._on_interval(iv)
        return status, reason

    def _stop_workers(self) -> None:
        """End the load now (the run stops early)."""
        assert self.pool is not None
        # A resource reading at the moment the load stops: the summary's CPU ends here,
        # not at the next reading, by which time the target may have spent a second on a
        # backlog of requests the workers gave up on (counted as interrupted, not done).
        self._sample(self.elapsed())
        self.pool.broadcast(Stop())

    async def _cleanup(self) -> None:
        if self.stats is not None:
            with contextlib.suppress(Exception):
                await self.stats.close()
        # The generator and the target end side by side; services (which the target
        # may still be using while it shuts down) after both.
        ending = []
        if self.pool is not None:
            ending.append(self.pool.close())
        if self.target is not None:
            ending.append(self.target.stop())
        if self.fleet is not None:
            ending.append(self.fleet.stop())
        for result in await asyncio.gather(*ending, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                self._take_traffic(final=True)  # the lines nginx wrote out as it stopped
        if self.services is not None:
            await self.services.stop()

    def _finish(self, status: RunStatus, reason: str | None) -> RunOutcome:
        for (cls, st), (message, n) in self.errors.items():
            self.emit(ErrorSample(self.key, cls, st, str(message), int(n)))
        window_start = math.ceil(self.plan.load.warmup - 1e-9) if self.plan.load.warmup > 0 else 0.0
        target_stats = (window_stats(self.stats_start, self.stats_end, self.gauge_samples,
                                     window_start) if self.stats_end else {})
        intervals = [_counts(iv) for iv in self.merger.merged]
        # A run is summarised over what it measured after the warm-up, and not at all when
        # that is under a second, or under what it was planned to measure when shorter (a
        # sweep's 0.6 s level), but never under half a second: over a few milliseconds a
        # handful of requests make the figures (`--duration 1ms`: 124 req/s from 7
        # requests). The reason then says so, so every output shows "not measured" and why.
        load = self.plan.load
        early = status != "completed"
        min_s = min_measured_for(planned_measured_s(load.total_duration_s, load.warmup))
        summary = summarise(intervals, [_reading(s) for s in self.samples], load.warmup,
                            target_stats or None, min_measured_s=min_s,
                            offered=offered_load(intervals, load.model_dump(), load.warmup,
                                                 self.user_levels),
                            generator_labels=self.bound.labels)
        note = too_short_note(intervals, load.warmup, min_s, stopped_early=early)
        if summary is None and note:
            reason = f"{reason}; {note}" if reason else note
        if summary is not None and summary.generator_bound and self.bound.verdict is None:
            # Bound over the whole window only (a run under LIVE_AFTER_S, or a lag p99 that
            # crept up late): the live warning still comes, with the stored verdict.
            verdict = generator_bound([iv for iv in intervals if iv.t_s + 1e-9 >= load.warmup],
                                      labels=self.bound.labels)
            if verdict is not None:
                last = self.merger.merged[-1]
                self.emit(GeneratorBound(self.key, round(last.t_s + last.duration_s, 3), verdict.reason,
                                         verdict.headline))
        self.emit(RunFinished(self.key, status, reason, time.time(), summary, target_stats))
        return RunOutcome(self.key, status, reason, summary, target_stats)
