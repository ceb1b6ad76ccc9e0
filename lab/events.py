"""The typed events every subscriber of the engine consumes.

The engine emits these, in this order for one run: ``RunStarted``, ``TargetReady`` (when
the lab starts the target), then ``IntervalStats`` and ``ResourceSample`` as the run goes
on, ``ErrorSample`` at the end, and ``RunFinished`` last, always, on every exit path.
Subscribers (the store recorder, the headless progress printer, the TUI bridge) are plain
callables ``(event) -> None`` and know nothing of one another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lab.figures import Summary
    from lab.plan import RunPlan

RunStatus = Literal["running", "completed", "failed", "aborted"]
ResourceRole = Literal["target", "generator", "lab", "system", "service", "replica", "balancer"]
"""``target``: the target's process tree (with replicas: all of them together);
``replica``: one replica's tree (``detail["replica"]`` its index); ``balancer``: nginx."""
ERROR_CLASSES = ("timeout", "connect", "reset", "http_4xx", "http_5xx", "redirects", "generator")
"""Error classes, in display order. ``redirects``: more redirects than are followed (a
redirect loop). ``generator`` errors are the lab's own (for example too many open files)
and are kept apart from the target's."""


@dataclass(frozen=True)
class HostFacts:
    """The machine a run was measured on."""

    cores: int
    """Logical CPU cores."""
    memory_bytes: int
    """Total physical memory."""
    python: str
    """Python version of the lab, e.g. ``3.11.7``."""
    platform: str
    """``platform.platform()``."""


@dataclass(frozen=True)
class RunStarted:
    """A run has begun; nothing has been measured yet."""

    run_key: str
    """A unique key for this run within the process (a uuid4 hex)."""
    plan: RunPlan
    started_at: float
    """Unix time, seconds."""
    host: HostFacts
    lab_version: str


@dataclass(frozen=True)
class TargetReady:
    """The target the lab started answers its ready path."""

    run_key: str
    url: str
    """Base URL, e.g. ``http://127.0.0.1:41234``."""
    pid: int | None
    """PID of the target's root process, or None for an external target."""
    startup_s: float
    """Seconds from spawn to the first 200 on the ready path."""


CLOCK_OFFSET_LIMIT_MS = 50.0
"""A cluster worker whose clock is further than this from the scheduler's is reported: its
intervals would start that much apart from the others', smearing the per-second series."""


@dataclass(frozen=True)
class GeneratorInfo:
    """One generator worker of a run: where it ran."""

    index: int
    """Its index, 0 … workers − 1 (its share of the load)."""
    host: str
    """The machine's host name."""
    pid: int
    """Its process id on that machine."""
    address: str | None = None
    """Its Dask worker address on a cluster; None for a local worker process."""
    clock_offset_ms: float | None = None
    """Cluster workers: how far the machine's clock is ahead of the scheduler's, ms."""

    @property
    def label(self) -> str:
        """How reports name it: ``worker 2`` locally, ``host-b, worker 2`` on a cluster."""
        return f"{self.host}, worker {self.index}" if self.address else f"worker {self.index}"

    @property
    def clock_off(self) -> bool:
        """Whether its clock is off by more than ``CLOCK_OFFSET_LIMIT_MS``."""
        return self.clock_offset_ms is not None and abs(self.clock_offset_ms) > CLOCK_OFFSET_LIMIT_MS


@dataclass(frozen=True)
class GeneratorsReady:
    """Every generator worker of a run has started and waits for the load's start."""

    run_key: str
    source: Literal["local", "dask"]
    """Local worker processes, or tasks on a Dask cluster."""
    cluster: str | None
    """The cluster as the user named it (``local:2``, ``tcp://host:8786``); None locally."""
    scheduler: str | None
    """The Dask scheduler's address the run used (``local:N``'s own); None locally."""
    generators: tuple[GeneratorInfo, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        """The distinct machines, in worker order."""
        return tuple(dict.fromkeys(g.host for g in self.generators))

    def load_from(self) -> str:
        """``4 generator workers on 2 hosts (dask)``; ``2 generator workers`` locally."""
        n = len(self.generators)
        text = f"{n} generator worker{'s' if n != 1 else ''}"
        if self.source == "dask":
            h = len(self.hosts)
            text += f" on {h} host{'s' if h != 1 else ''} (dask)"
        return text


@dataclass(frozen=True)
class IntervalStats:
    """One interval of a run, merged across every generator worker.

    Intervals are aligned on the run's start: interval ``t_s`` covers
    ``[t_s, t_s + duration_s)`` seconds after the load began. The last interval may be
    shorter (the run's real end) and also holds requests that completed while the lab
    awaited in-flight requests after the duration ended.
    """

    run_key: str
    t_s: float
    """Start of the interval, seconds after the load began."""
    duration_s: float
    """Length of the interval in seconds (1.0 except for the last)."""
    requests: int
    """Completed attempts: ok + errors."""
    ok: int
    errors: int
    errors_by_class: dict[str, int]
    """Error counts keyed by a class of ``ERROR_CLASSES``."""
    bytes: int
    """Response body bytes as received (before decompression)."""
    dropped: int
    """Open model: requests not sent because ``max_in_flight`` was reached."""
    interrupted: int
    """Requests cancelled at the run's end; neither ok nor errors."""
    active_vus: int
    """Closed model: VUs running at the end of the interval (summed over workers)."""
    target_rate: float
    """Open model: scheduled arrival rate (req/s) at the end of the interval."""
    histogram: bytes
    """Encoded HDR histogram (microseconds) of successful requests' latency."""
    histogram_all: bytes
    """Encoded HDR histogram (microseconds) of every completed attempt, errors included."""
    histogram_service: bytes
    """Encoded HDR histogram (microseconds) of service time of successful requests, from
    the actual send (differs from ``histogram`` only in the open model)."""
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    """Percentiles of successful requests in this interval (None when there were none)."""
    stage: int = 0
    """Index of the load stage this interval ended in."""
    generator_cpu_percent: float | None = None
    """CPU of the busiest generator worker over the interval, percent of one core, as the
    worker measured itself."""
    loop_lag_p99_ms: float | None = None
    """p99 of the generator workers' event-loop lag (late wake-ups) and, in the open
    model, of each request's send lag (sent minus intended time), merged."""
    loop_lag_max_ms: float | None = None
    histogram_lag: bytes = b""
    """Encoded HDR histogram (microseconds) of the workers' event-loop lag and, in the
    open model, of each request's send lag."""
    in_flight_mean: float | None = None
    generator_cpu_by_worker: tuple[float | None, ...] = ()
    """Each generator worker's CPU over the interval (index = worker), percent of one core;
    None for a worker that did not read it."""
    histogram_lag_by_worker: tuple[bytes, ...] = ()
    """Each generator worker's own lag histogram (index = worker; empty when it did not
    report the interval), so the generator-bound rule can name the worker that lagged.
    Not stored: ``histogram_lag`` is their merge."""
    """Time-weighted mean number of requests outstanding during the interval, summed over
    the workers (None from workers that do not report it). A request is outstanding from
    its begin (its send in the closed model; its intended send time in the open model,
    where its latency starts) to its completion or interruption; think time is not. By
    Little's law it is close to ``ok / duration_s`` times the mean latency."""


@dataclass(frozen=True)
class ResourceSample:
    """A psutil reading of one role at one instant.

    ``cpu_percent`` is a percent of one core (100 = one core busy; the system role sums
    all cores). ``cpu_seconds`` is cumulative user+system CPU of the role's processes.
    For the ``system`` role, ``rss_bytes`` is used physical memory.
    """

    run_key: str
    t_s: float
    role: ResourceRole
    pid: int | None
    cpu_percent: float | None
    """None on the first reading of a run, which only primes the CPU counters."""
    cpu_seconds: float
    rss_bytes: int
    num_threads: int
    num_fds: int
    processes: int = 1
    """How many processes the reading sums (the target's whole tree)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Extra readings: per-core CPU and memory totals for ``system``."""


@dataclass(frozen=True)
class ErrorSample:
    """Errors of one class and status over a whole run, with one sample message."""

    run_key: str
    error_class: str
    status: int | None
    message: str
    count: int


@dataclass(frozen=True)
class LoadChanged:
    """The load level changed: a new stage began or a user changed VUs or rate."""

    run_key: str
    t_s: float
    stage: int
    level: float
    """VUs (closed model) or arrival rate in req/s (open model)."""
    reason: str
    """``stage`` or ``user``."""


@dataclass(frozen=True)
class TargetSample:
    """The target's gauges (queue depth, lag, pool use...), read from its stats path
    about once a second."""

    run_key: str
    t_s: float
    """Seconds since the load began."""
    gauges: dict[str, float]
    """Name → current level, in the units the target names (e.g. ``job_lag_ms``)."""


@dataclass(frozen=True)
class ServicesReady:
    """The backing services of the run (redis, PostgreSQL, downstream apps) are up."""

    run_key: str
    services: dict[str, str]
    """Name → URL, e.g. ``{"redis": "redis://127.0.0.1:41234/0"}``."""
    notes: list[str] = field(default_factory=list)
    """Optional services that were not started, and why."""


@dataclass(frozen=True)
class RunFinished:
    """A run has ended, whatever the way. Always the last event of a run."""

    run_key: str
    status: RunStatus
    reason: str | None
    """Why it failed or was aborted; None when completed."""
    ended_at: float
    """Unix time, seconds."""
    summary: Summary | None
    """Headline figures over the measured window (warm-up excluded); None when nothing
    was measured."""
    target_stats: dict[str, Any] = field(default_factory=dict)
    """What the target reported on its stats path over the measured window, e.g.
    ``{"cache_hits": 10, "cache_misses": 2}``."""


@dataclass(frozen=True)
class GeneratorBound:
    """The load generator limits this run (``lab.analysis.bound``): sent once, when the
    rule first holds for the window measured so far, or with the stored verdict just
    before ``RunFinished`` when it holds only for the whole window."""

    run_key: str
    t_s: float
    """Seconds after the load began: the end of the interval that settled it."""
    reason: str
    """One line, the same words as the stored ``generator_bound_reason``."""
    headline: str
    """The reason as a short banner, e.g. ``generator ≥ 90% CPU for 3 s``."""


@dataclass(frozen=True)
class ReplicaChanged:
    """A replica was started, became ready, began draining, or ended."""

    run_key: str
    replica: int
    """Its index: 0, 1, 2, ... never reused within a run."""
    pid: int | None
    address: str
    """``127.0.0.1:PORT``."""
    state: str
    """``starting``, ``ready``, ``draining``, ``stopped``, ``killed``, ``exited`` or ``failed``."""
    started_s: float
    """Seconds since the load began (negative: before it)."""
    ready_s: float | None
    ended_s: float | None


@dataclass(frozen=True)
class ReplicaTraffic:
    """What one replica served in one interval, from the balancer's access log."""

    run_key: str
    t_s: float
    duration_s: float
    replica: int
    """Its index; -1 for requests the balancer answered with no replica to send them to."""
    requests: int
    errors: int
    """Answers of status 500 and above (the balancer's own 502/503/504 included), and
    requests the client gave up on before the answer (nginx's 499)."""
    histogram: bytes
    """Encoded HDR histogram (microseconds) of the replica's response time as the
    balancer measured it (``$upstream_response_time``)."""


@dataclass(frozen=True)
class ReplicaCount:
    """How many replicas there were at the end of one interval."""

    run_key: str
    t_s: float
    desired: int
    """What the autoscaler (or the fixed count) asks for."""
    ready: int
    starting: int
    draining: int


@dataclass(frozen=True)
class ScaleDecision:
    """One decision of the autoscaler (``lab.autoscale``), taken every sync period."""

    run_key: str
    t_s: float
    current: int
    metric: str
    metric_value: float | None
    """The mean per replica the rule used (None: no metric could be read)."""
    ratio: float | None
    recommended: int
    desired: int
    applied: bool
    """Whether the replica count was changed."""
    reason: str
    inputs: dict[str, Any]
    """Everything the decision was computed from (per-replica readings, readiness,
    demand), so a stored run can be replayed through the rule."""


@dataclass(frozen=True)
class FaultApplied:
    """A ``[[faults]]`` entry came due."""

    run_key: str
    t_s: float
    action: str
    """``kill_replica``."""
    replica: int
    applied: bool
    """False when there was nothing to do (the replica had already ended, or never existed)."""
    note: str
    """One line: what was done, or why nothing was."""


Event = (RunStarted | ServicesReady | TargetReady | GeneratorsReady | IntervalStats | ResourceSample
         | TargetSample | ErrorSample | LoadChanged | GeneratorBound | RunFinished | ReplicaChanged
         | ReplicaTraffic | ReplicaCount | ScaleDecision | FaultApplied)
Listener = Callable[[Event], None]
