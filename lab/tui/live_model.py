"""The live run as plain data: a snapshot the engine's events update, and the bridge.

The bridge is one more listener on the engine's event stream. It never posts a
message to Textual: it folds each event (about one per second and type) into a
``LiveSnapshot`` and bumps its ``version``. The Live screen polls that version on a
timer (at most four times a second) and redraws only when it changed, so however
fast the events come, the UI does a bounded amount of work. No Textual here, so the
model is testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from lab.analysis.replicas import NO_REPLICA
from lab.events import (
    ErrorSample,
    Event,
    GeneratorBound,
    GeneratorInfo,
    GeneratorsReady,
    IntervalStats,
    LoadChanged,
    ReplicaChanged,
    ReplicaCount,
    ReplicaTraffic,
    ResourceSample,
    RunFinished,
    RunStarted,
    ScaleDecision,
    TargetReady,
    TargetSample,
)
from lab.load.histogram import LatencyHistogram

if TYPE_CHECKING:
    from lab.figures import Summary

Phase = Literal["waiting", "starting", "running", "finished"]
LIVE_STATES = ("starting", "ready", "draining")
"""States of a replica whose process is still there (the others have ended)."""


@dataclass(frozen=True)
class Marker:
    """A load change to mark on the charts."""

    t_s: float
    """Seconds after the load began."""
    level: float
    """The new VUs or arrival rate."""
    reason: str
    """``stage`` or ``user``."""


@dataclass(frozen=True)
class ScaleMark:
    """An applied autoscaler decision, to mark on the replicas chart."""

    t_s: float
    """Seconds after the load began."""
    current: int
    desired: int


@dataclass
class ReplicaLive:
    """What one replica has done so far in the current run (the bridge's running totals)."""

    replica: int
    state: str = "starting"
    """As the last ``ReplicaChanged`` said: ``starting``, ``ready``, ``draining``,
    ``stopped``, ``killed``, ``exited`` or ``failed``."""
    requests: int = 0
    errors: int = 0
    histogram: LatencyHistogram | None = None
    """Its response times as nginx measured them, every ``ReplicaTraffic`` merged; None
    until it served a request (an HDR histogram is ~190 KB)."""
    cpu_percent: float | None = None
    """Its process tree's CPU from the latest ``replica`` reading, percent of one core."""


@dataclass(frozen=True)
class ReplicaView:
    """One row of the Live screen's replica table."""

    label: str
    """The replica's index, or ``×N`` for ended replicas shown together."""
    state: str
    requests: int
    """Requests it answered so far (nginx's log, so about 1.5 s behind the counters)."""
    share: float | None
    """Its fraction (0..1) of the requests the replicas answered so far; None before any."""
    p50_ms: float | None
    p99_ms: float | None
    """From its merged HDR histogram (``ReplicaTraffic.histogram``) so far."""
    cpu_percent: float | None
    """Latest reading, percent of one core; None once its process is gone (a process
    that is gone is not shown as idle)."""


@dataclass
class LiveSnapshot:
    """Everything the Live screen shows about the current run, as plain values."""

    index: int = 0
    """0-based position of this run among the runs the user asked for."""
    count: int = 1
    """How many runs the user asked for (variants in turn)."""
    experiment: str = ""
    title: str = ""
    variant: str = ""
    model: str = "closed"
    """``closed`` (VUs) or ``open`` (arrival rate)."""
    total_s: float = 0.0
    """Planned length of the run, warm-up included."""
    warmup_s: float = 0.0
    stages: int = 0
    """Number of load stages (0: one steady level)."""
    phase: Phase = "waiting"
    stage: int = 0
    level: float = 0.0
    """Current VUs (closed) or arrival rate (open): the last reported or set level."""
    elapsed_s: float = 0.0
    """Seconds of load so far, from the engine's own timestamps (not a wall clock)."""
    target_url: str | None = None
    # Time series, one point per interval (x = the interval's end, seconds).
    t: list[float] = field(default_factory=list)
    ok_rps: list[float] = field(default_factory=list)
    err_rps: list[float] = field(default_factory=list)
    p50: list[float | None] = field(default_factory=list)
    p95: list[float | None] = field(default_factory=list)
    p99: list[float | None] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    # Counters over the whole run so far (warm-up included: this is what happened).
    requests: int = 0
    ok: int = 0
    errors: int = 0
    errors_by_class: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    interrupted: int = 0
    # Latest resource readings.
    target_cpu: float | None = None
    target_rss: int | None = None
    target_processes: int = 0
    generator_cpu: dict[int, float] = field(default_factory=dict)
    """Latest CPU percent per generator process id."""
    lab_cpu: float | None = None
    service_cpu: dict[str, float | None] = field(default_factory=dict)
    """Latest CPU percent per backing service (redis, postgres, downstream apps)."""
    gauges: dict[str, float] = field(default_factory=dict)
    """The target's latest gauges (queue depth, lag...), from its stats path."""
    system_cpu: float | None = None
    """Sum over all cores (100 per busy core)."""
    cores: int = 0
    # Where the load comes from.
    cluster: str | None = None
    """The Dask cluster as the user named it (``local:2``, ``tcp://host:8786``), from the plan;
    None for local generator processes."""
    scheduler: str | None = None
    """The Dask scheduler's address the run uses (``local:N``'s own), once the generators
    are ready."""
    load_from: str = ""
    """``2 generator workers on 1 host (dask)`` (``GeneratorsReady.load_from``), once the
    generators are ready; empty before."""
    generators: tuple[GeneratorInfo, ...] = ()
    """Every generator worker and where it runs, once they are ready."""
    generator_bound_at: float | None = None
    """When the engine found the generator limiting the run (``GeneratorBound``)."""
    generator_bound_headline: str = ""
    """Why, as a short banner (``GeneratorBound.headline``)."""
    # Replicas behind a balancer (runs without one leave these empty).
    balancer: str | None = None
    """The balancer's method (``least_conn``...) when the run has replicas behind nginx."""
    autoscaled: bool = False
    """Whether an autoscaler changes the replica count (``[autoscale]``)."""
    replicas: dict[int, ReplicaLive] = field(default_factory=dict)
    replica_t: list[float] = field(default_factory=list)
    """End of each interval a ``ReplicaCount`` was taken at, seconds (the charts' x)."""
    ready: list[float] = field(default_factory=list)
    desired: list[float] = field(default_factory=list)
    scale_marks: list[ScaleMark] = field(default_factory=list)
    decisions: int = 0
    """Autoscaler decisions so far, applied or not."""
    unrouted: int = 0
    """Requests that arrived with no replica ready: held by the activator (scaled to zero),
    else answered 503 by nginx."""
    balancer_cpu: float | None = None
    """nginx's latest CPU percent."""
    # The end.
    status: str | None = None
    reason: str | None = None
    summary: Summary | None = None
    version: int = 0
    """Bumped on every change; the screen redraws when it differs from what it drew."""

    @property
    def generator_bound(self) -> bool:
        """Whether the generator limits the run (the rule of ``lab.analysis.bound``)."""
        return self.generator_bound_at is not None

    @property
    def clocks_off(self) -> tuple[GeneratorInfo, ...]:
        """Generators whose clock is off the scheduler's by more than ``CLOCK_OFFSET_LIMIT_MS``
        (their intervals are shifted by as much)."""
        return tuple(g for g in self.generators if g.clock_off)

    @property
    def generator_cpu_total(self) -> float | None:
        """CPU percent of every generator process together, None before any reading."""
        return sum(self.generator_cpu.values()) if self.generator_cpu else None

    def replica_views(self, max_rows: int = 0) -> list[ReplicaView]:
        """The replica table: one row per replica in index order; shares add up to 1.

        Args:
            max_rows: with more replicas than this (0: no limit), the ones that have ended
                are shown as one row (their requests summed, their histograms merged), so
                a run that scaled up and down many times still fits; the shares still add
                up to 1.
        """
        served = sum(r.requests for r in self.replicas.values())
        reps = sorted(self.replicas.values(), key=lambda r: r.replica)
        ended = [r for r in reps if r.state not in LIVE_STATES]
        if max_rows and len(reps) > max_rows and len(ended) > 1:
            live = [self._view(str(r.replica), r, served) for r in reps if r.state in LIVE_STATES]
            return live + [self._ended_view(ended, served)]
        return [self._view(str(r.replica), r, served) for r in reps]

    @staticmethod
    def _view(label: str, r: ReplicaLive, served: int) -> ReplicaView:
        h = r.histogram
        has = h is not None and h.count > 0
        return ReplicaView(label, r.state, r.requests, r.requests / served if served else None,
                           h.percentile_ms(50) if h is not None and has else None,
                           h.percentile_ms(99) if h is not None and has else None,
                           r.cpu_percent if r.state in LIVE_STATES else None)

    @staticmethod
    def _ended_view(ended: list[ReplicaLive], served: int) -> ReplicaView:
        merged = LatencyHistogram()
        for r in ended:
            if r.histogram is not None:
                merged.merge_encoded(r.histogram.encode())
        together = ReplicaLive(-1, "ended", sum(r.requests for r in ended), sum(r.errors for r in ended),
                               merged)
        return LiveSnapshot._view(f"×{len(ended)}", together, served)


class LiveBridge:
    """An engine listener that folds events into ``snapshot``; never touches widgets.

    Args:
        snapshot: the model to update; replace it (``bridge.snapshot = ...``) per run.
    """

    def __init__(self, snapshot: LiveSnapshot | None = None) -> None:
        self.snapshot = snapshot or LiveSnapshot()

    def __call__(self, event: Event) -> None:
        """Fold one event into the snapshot."""
        s = self.snapshot
        if isinstance(event, RunStarted):
            plan = event.plan
            s.experiment, s.title, s.variant = plan.experiment, plan.title, plan.variant
            s.model = plan.load.model
            s.total_s = plan.load.total_duration_s
            s.warmup_s = plan.load.warmup
            s.stages = len(plan.load.stages)
            s.level = plan.load.start_level
            s.phase = "starting"
            s.balancer = plan.balancer.method if plan.balancer is not None else None
            s.autoscaled = plan.autoscale is not None
            s.cluster = plan.load.cluster
        elif isinstance(event, GeneratorsReady):
            s.cluster, s.scheduler = event.cluster, event.scheduler
            s.load_from, s.generators = event.load_from(), event.generators
        elif isinstance(event, TargetReady):
            s.target_url = event.url
        elif isinstance(event, IntervalStats):
            self._interval(s, event)
        elif isinstance(event, ResourceSample):
            self._resource(s, event)
        elif isinstance(event, TargetSample):
            s.gauges.update(event.gauges)
        elif isinstance(event, LoadChanged):
            s.markers.append(Marker(event.t_s, event.level, event.reason))
            s.level = event.level
            s.stage = event.stage
        elif isinstance(event, GeneratorBound):
            if s.generator_bound_at is None:
                s.generator_bound_at, s.generator_bound_headline = event.t_s, event.headline
        elif isinstance(event, (ReplicaChanged, ReplicaTraffic, ReplicaCount, ScaleDecision)):
            self._fleet(s, event)
        elif isinstance(event, ErrorSample):
            # The per-interval counts already hold every error; samples only add text.
            return
        elif isinstance(event, RunFinished):
            s.phase = "finished"
            s.status, s.reason, s.summary = event.status, event.reason, event.summary
        s.version += 1

    @staticmethod
    def _interval(s: LiveSnapshot, iv: IntervalStats) -> None:
        s.phase = "running"
        end = iv.t_s + iv.duration_s
        s.elapsed_s = max(s.elapsed_s, end)
        d = iv.duration_s if iv.duration_s > 0 else 1.0
        s.t.append(round(end, 3))
        s.ok_rps.append(iv.ok / d)
        s.err_rps.append(iv.errors / d)
        s.p50.append(iv.p50_ms)
        s.p95.append(iv.p95_ms)
        s.p99.append(iv.p99_ms)
        level = float(iv.active_vus) if s.model == "closed" else iv.target_rate
        s.levels.append(level)
        s.level = level
        s.stage = iv.stage
        s.requests += iv.requests
        s.ok += iv.ok
        s.errors += iv.errors
        for cls, n in iv.errors_by_class.items():
            s.errors_by_class[cls] = s.errors_by_class.get(cls, 0) + n
        s.dropped += iv.dropped
        s.interrupted += iv.interrupted

    @staticmethod
    def _fleet(s: LiveSnapshot,
               event: ReplicaChanged | ReplicaTraffic | ReplicaCount | ScaleDecision) -> None:
        if isinstance(event, ReplicaChanged):
            s.replicas.setdefault(event.replica, ReplicaLive(event.replica)).state = event.state
        elif isinstance(event, ReplicaTraffic):
            if event.replica == NO_REPLICA:
                s.unrouted += event.requests
                return
            rep = s.replicas.setdefault(event.replica, ReplicaLive(event.replica))
            rep.requests += event.requests
            rep.errors += event.errors
            if event.histogram:
                if rep.histogram is None:
                    rep.histogram = LatencyHistogram()
                rep.histogram.merge_encoded(event.histogram)
        elif isinstance(event, ReplicaCount):
            s.replica_t.append(round(event.t_s, 3))
            s.ready.append(float(event.ready))
            s.desired.append(float(event.desired))
        else:
            s.decisions += 1
            if event.applied:
                s.scale_marks.append(ScaleMark(event.t_s, event.current, event.desired))

    @staticmethod
    def _resource(s: LiveSnapshot, r: ResourceSample) -> None:
        if r.t_s > 0:
            s.phase = "running" if s.phase == "starting" else s.phase
            s.elapsed_s = max(s.elapsed_s, min(r.t_s, s.total_s or r.t_s))
        # A reading without a CPU percent (the priming one, or the run's last one taken
        # too soon after the previous) keeps the last known figure on screen.
        if r.role == "target":
            s.target_rss, s.target_processes = r.rss_bytes, r.processes
            s.target_cpu = r.cpu_percent if r.cpu_percent is not None else s.target_cpu
        elif r.role == "service":
            name = str(r.detail.get("service", r.pid))
            s.service_cpu[name] = r.cpu_percent if r.cpu_percent is not None else s.service_cpu.get(name)
        elif r.role == "replica":
            index = r.detail.get("replica")
            if isinstance(index, int) and r.cpu_percent is not None:
                s.replicas.setdefault(index, ReplicaLive(index)).cpu_percent = r.cpu_percent
        elif r.role == "balancer":
            s.balancer_cpu = r.cpu_percent if r.cpu_percent is not None else s.balancer_cpu
        elif r.role == "lab":
            s.lab_cpu = r.cpu_percent if r.cpu_percent is not None else s.lab_cpu
        elif r.role == "system":
            s.system_cpu = r.cpu_percent if r.cpu_percent is not None else s.system_cpu
            cores = r.detail.get("cores")
            if isinstance(cores, int):
                s.cores = cores
        elif r.role == "generator" and r.pid is not None:
            if r.cpu_percent is None:
                return  # the priming reading says nothing yet
            s.generator_cpu[r.pid] = r.cpu_percent
