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

from lab.events import (
    ErrorSample,
    Event,
    GeneratorBound,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    TargetReady,
    TargetSample,
)

if TYPE_CHECKING:
    from lab.figures import Summary

Phase = Literal["waiting", "starting", "running", "finished"]


@dataclass(frozen=True)
class Marker:
    """A load change to mark on the charts."""

    t_s: float
    """Seconds after the load began."""
    level: float
    """The new VUs or arrival rate."""
    reason: str
    """``stage`` or ``user``."""


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
    generator_bound_at: float | None = None
    """When the engine found the generator limiting the run (``GeneratorBound``)."""
    generator_bound_headline: str = ""
    """Why, as a short banner (``GeneratorBound.headline``)."""
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
    def generator_cpu_total(self) -> float | None:
        """CPU percent of every generator process together, None before any reading."""
        return sum(self.generator_cpu.values()) if self.generator_cpu else None


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
