"""What the results database gives back: frozen dataclasses of runs, intervals, sweeps,
resource readings, errors and load changes, plus the run statuses and time formatting
they use. Nothing here speaks SQL.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from lab.figures import Summary
from lab.run_config import RunConfig

RUN_STATUSES = ("running", "completed", "failed", "aborted")
"""The values of ``runs.status``."""

BUSY_TIMEOUT_MS = 10_000
"""How long a write waits for another writer's lock before failing, milliseconds."""


def default_db_path() -> Path:
    """The results database to use: ``$LAB_DB`` or ``results.db`` in the working directory."""
    return Path(os.environ.get("LAB_DB", "results.db"))


def unsaved_run_paths(db_path: Path, run_key: str) -> tuple[Path, Path]:
    """Where a run that ``db_path`` stopped taking is kept, in the order they are tried:
    ``<stem>.unsaved-<first 12 characters of the run key>.db`` beside the database, else
    in the temporary directory."""
    name = f"{db_path.stem}.unsaved-{run_key[:12]}.db"
    return db_path.parent / name, Path(tempfile.gettempdir()) / name


def unsaved_beside(db_path: Path) -> list[Path]:
    """The results databases beside ``db_path`` that hold runs it stopped taking
    (``<stem>.unsaved-KEY.db``, see ``unsaved_run_paths``), by name."""
    return sorted(db_path.parent.glob(f"{db_path.stem}.unsaved-*.db"))


def iso_utc(unix_s: float) -> str:
    """Format Unix seconds as ISO-8601 UTC text with milliseconds.

    Example: ``2026-11-29T19:03:04.123Z``.
    """
    text = datetime.fromtimestamp(unix_s, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")




@dataclass(frozen=True)
class RunRecord:
    """One stored run, with its summary when it measured anything."""

    id: int
    """Primary key of the ``runs`` row."""
    experiment: str
    """Experiment name (the TOML file's stem)."""
    variant: str
    """Variant name."""
    status: str
    """``running``, ``completed``, ``failed`` or ``aborted``."""
    reason: str | None
    """Why the run failed or was aborted; None when completed (or still running)."""
    started_at: str
    """Start as ISO-8601 UTC text, e.g. ``2026-11-29T19:03:04.123Z``."""
    ended_at: str | None
    """End as ISO-8601 UTC text; None while running (or if the lab died mid-run)."""
    duration_s: float | None
    """Wall-clock seconds from start to end; None when not ended."""
    config: dict[str, Any]
    """The resolved run configuration (``RunPlan.config()``) as stored and as ``lab run
    --format json`` gives it; read its fields through ``settings``."""
    lab_version: str
    """Version of the lab that recorded the run."""
    host: dict[str, Any]
    """The machine: ``cores``, ``memory_bytes``, ``python``, ``platform``."""
    target_url: str | None
    """Base URL of the target, once it was ready."""
    summary: Summary | None
    """Headline figures over the measured window; None when nothing was measured."""
    target_stats: dict[str, Any] = field(default_factory=dict)
    """What the target reported on its stats path over the measured window."""
    title: str = ""
    """The experiment's title."""
    run_key: str = ""
    """The engine's key of the run (uuid4 hex)."""
    started_at_unix: float = 0.0
    """Start, Unix seconds."""
    sweep_id: int | None = None
    """The sweep the run is a level of (``sweeps.id``); None for a plain run."""
    sweep_level: float | None = None
    """The swept parameter's value in this run."""
    ended_at_unix: float | None = None
    """End, Unix seconds; None when not ended."""

    @cached_property
    def settings(self) -> RunConfig:
        """``config`` as typed fields."""
        return RunConfig.from_dict(self.config if isinstance(self.config, dict) else {})


@dataclass(frozen=True)
class IntervalRow:
    """One stored interval of a run (see ``lab.events.IntervalStats``)."""

    run_id: int
    """The run."""
    t_s: float
    """Start of the interval, seconds after the load began."""
    duration_s: float
    """Length of the interval, seconds."""
    requests: int
    """Completed attempts: ok + errors."""
    ok: int
    """Successful requests."""
    errors: int
    """Failed attempts."""
    bytes: int
    """Response body bytes received."""
    dropped: int
    """Open model: requests not sent because the in-flight cap was reached."""
    interrupted: int
    """Requests cancelled at the run's end."""
    active_vus: int
    """Closed model: VUs running at the end of the interval."""
    target_rate: float
    """Open model: scheduled arrival rate at the end of the interval, req/s."""
    stage: int
    """Index of the load stage the interval ended in."""
    errors_by_class: dict[str, int]
    """Error counts by class."""
    histogram: bytes
    """Encoded HDR histogram (µs) of successful requests."""
    histogram_all: bytes
    """Encoded HDR histogram (µs) of every completed attempt."""
    histogram_service: bytes
    """Encoded HDR histogram (µs) of service time of successful requests."""
    p50_ms: float | None
    """Median latency of successful requests, ms (None when there were none)."""
    p90_ms: float | None
    """90th percentile, ms."""
    p95_ms: float | None
    """95th percentile, ms."""
    p99_ms: float | None
    """99th percentile, ms."""
    max_ms: float | None
    """Maximum, ms."""
    generator_cpu_percent: float | None = None
    """CPU of the busiest generator worker, percent of one core."""
    loop_lag_p99_ms: float | None = None
    """p99 of the generator workers' event-loop lag, ms."""
    loop_lag_max_ms: float | None = None
    histogram_lag: bytes = b""
    """Encoded HDR histogram (µs) of the generator workers' event-loop lag."""
    in_flight_mean: float | None = None
    """Time-weighted mean of requests in flight during the interval (all workers)."""
    generator_cpu_by_worker: tuple[float | None, ...] = ()
    """Each generator worker's CPU (index = worker), percent of one core."""


@dataclass(frozen=True)
class SweepRecord:
    """One stored sweep: a variant run once per level of one parameter."""

    id: int
    experiment: str
    variant: str
    parameter: str
    levels: list[float]
    slo_p99_ms: float | None
    created_at: str
    capacity_rps: float | None
    """Open-model rate sweeps: the highest rate meeting the SLO (None otherwise)."""
    report: dict[str, Any]
    """The per-level figures and fit results as computed when the sweep ended."""
    runs: list[RunRecord]
    """The levels' runs, in run order."""
    fits: list[dict[str, Any]]
    """Rows of ``fits``: ``model``, ``lambda``, ``sigma``, ``kappa``, ``r2``, ``n_star``, ..."""

    @property
    def missing_levels(self) -> list[float]:
        """Planned levels that have no stored run (never run, or their run was deleted)."""
        stored = {run.sweep_level for run in self.runs}
        return [level for level in self.levels if float(level) not in stored]


@dataclass(frozen=True)
class ResourceRow:
    """One stored resource reading (see ``lab.events.ResourceSample``)."""

    run_id: int
    """The run."""
    t_s: float
    """Seconds after the load began."""
    role: str
    """``target``, ``generator``, ``lab``, ``system``, ``service``, ``replica`` or ``balancer``."""
    pid: int | None
    """Process id (root of the tree for the target), None for ``system``."""
    cpu_percent: float | None
    """Percent of one core; None on a run's first (priming) reading."""
    cpu_seconds: float
    """Cumulative user+system CPU seconds."""
    rss_bytes: int
    """Resident memory, bytes (used physical memory for ``system``)."""
    num_threads: int
    """Threads."""
    num_fds: int
    """Open file descriptors."""
    processes: int
    """How many processes the reading sums."""
    detail: dict[str, Any]
    """Extra readings (per-core CPU, memory totals)."""
    replica: int | None = None
    """The replica's index for role ``replica`` (column ``resources.replica``); None otherwise."""


@dataclass(frozen=True)
class ErrorRow:
    """Errors of one class and status over a run (see ``lab.events.ErrorSample``)."""

    run_id: int
    """The run."""
    error_class: str
    """Error class (column ``class``), one of ``lab.events.ERROR_CLASSES``."""
    status: int | None
    """HTTP status, None for transport errors."""
    message: str
    """One sample message."""
    count: int
    """How many errors of this class and status."""


@dataclass(frozen=True)
class RunEventRow:
    """A change of load level during a run (see ``lab.events.LoadChanged``)."""

    run_id: int
    """The run."""
    t_s: float
    """Seconds after the load began."""
    kind: str
    """``load_changed``."""
    stage: int
    """Index of the load stage."""
    level: float
    """VUs (closed model) or arrival rate in req/s (open model)."""
    reason: str
    """``stage`` or ``user``."""




@dataclass(frozen=True)
class ReplicaRow:
    """One replica of a run behind a balancer, as it ended (see ``lab.events.ReplicaChanged``)."""

    run_id: int
    replica: int
    """Its index within the run (0, 1, 2, ... never reused)."""
    pid: int | None
    address: str
    """``127.0.0.1:PORT``."""
    state: str
    """Its last state: ``stopped``, ``killed``, ``exited`` or ``failed`` after a run."""
    started_s: float
    """Seconds after the load began (negative: started before it)."""
    ready_s: float | None
    ended_s: float | None


@dataclass(frozen=True)
class ReplicaIntervalRow:
    """What one replica served in one interval (see ``lab.events.ReplicaTraffic``)."""

    run_id: int
    t_s: float
    duration_s: float
    replica: int
    """-1: requests the balancer answered itself, with no replica to send them to."""
    requests: int
    errors: int
    histogram: bytes
    """Encoded HDR histogram (µs) of the replica's response time (``$upstream_response_time``)."""


@dataclass(frozen=True)
class ReplicaCountRow:
    """Replicas at the end of one interval (see ``lab.events.ReplicaCount``)."""

    run_id: int
    t_s: float
    desired: int
    ready: int
    starting: int
    draining: int


@dataclass(frozen=True)
class FaultRow:
    """A fault of a run as it came due (see ``lab.events.FaultApplied``)."""

    run_id: int
    t_s: float
    action: str
    replica: int
    applied: bool
    note: str


@dataclass(frozen=True)
class AutoscaleEventRow:
    """One autoscaler decision (see ``lab.events.ScaleDecision``)."""

    run_id: int
    t_s: float
    current: int
    metric: str
    metric_value: float | None
    ratio: float | None
    recommended: int
    desired: int
    applied: bool
    reason: str
    inputs: dict[str, Any]
    """What the decision was computed from: enough to replay it through ``lab.autoscale``."""
