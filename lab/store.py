"""``results.db``: the schema, the writes of a run and the queries of the reports.

This is the only module that speaks SQL (through sqlite-utils); everything else gets
frozen dataclasses back. The table and column names below are a contract: people query
``results.db`` with other tools. Extra columns may be added, none renamed.

* ``runs``: one row per run (status ``running`` / ``completed`` / ``failed`` /
  ``aborted``), with its resolved configuration as JSON and the host's facts, and the
  lab process that records it (``lab_pid``, ``lab_started_at_unix``, ``lab_host``): a
  ``running`` run whose lab process is gone was killed, and is marked ``failed``.
* ``intervals``: one row per merged interval (normally one second) of a run, with the
  encoded HDR histograms, written as they arrive so a run that fails midway keeps what
  it measured.
* ``resources``: psutil readings per role (target / generator / lab / system).
* ``errors``: errors of one class and status over a run, with a sample message.
* ``run_events``: load changes (new stage, user changed VUs or rate).
* ``summaries``: a run's headline figures, flattened (one row per run, when measured).
* ``sweeps``: one row per variant of a swept experiment; its levels are runs
  (``runs.sweep_id``, ``runs.sweep_level``). ``fits``: the USL and Amdahl fits of a sweep.
* ``target_samples``: the target's gauges (queue depth, lag, ...) read from its stats
  path about once a second: ``(run_id, t_s, name, value)``.

Times: ``started_at`` / ``ended_at`` are ISO-8601 UTC text with milliseconds
(``2026-11-29T19:03:04.123Z``); ``started_at_unix`` / ``ended_at_unix`` hold the same
instants as Unix seconds. Interval and resource times ``t_s`` are seconds after the load
began.

Concurrency: the database runs in WAL mode with a 10 s busy timeout and every write is
its own short ``BEGIN IMMEDIATE`` transaction, so two processes (or two ``Store``
objects) may record runs into one file at once. A ``Store`` may be shared between
threads; its calls are serialised by a lock.

Schema changes are numbered migration steps (``_MIGRATIONS``), each applied once and
recorded in ``PRAGMA user_version``. To change the schema, append a step; never edit
an applied one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database
from sqlite_utils.db import Table

from lab.analysis.offered import offered_load
from lab.analysis.summary import (
    MIN_MEASURED_S,
    CpuReading,
    IntervalCounts,
    Latency,
    Summary,
    summarise,
    too_short_note,
)
from lab.errors import StoreError
from lab.events import (
    ErrorSample,
    Event,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    ServicesReady,
    TargetReady,
    TargetSample,
)
from lab.procs import owner_alive, this_lab

RUN_STATUSES = ("running", "completed", "failed", "aborted")
"""The values of ``runs.status``."""

BUSY_TIMEOUT_MS = 10_000
"""How long a write waits for another writer's lock before failing, milliseconds."""


def default_db_path() -> Path:
    """The results database to use: ``$LAB_DB`` or ``results.db`` in the working directory."""
    return Path(os.environ.get("LAB_DB", "results.db"))


def iso_utc(unix_s: float) -> str:
    """Format Unix seconds as ISO-8601 UTC text with milliseconds.

    Example: ``2026-11-29T19:03:04.123Z``.
    """
    text = datetime.fromtimestamp(unix_s, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# --------------------------------------------------------------------------- records


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
    """The resolved run configuration (``RunPlan.config()``)."""
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
    """``target``, ``generator``, ``lab``, ``system`` or ``service``."""
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


# --------------------------------------------------------------------------- schema

_LATENCY_FIELDS = ("p50", "p90", "p95", "p99", "max", "mean")
_LATENCY_PREFIXES = {"latency_ms": "", "latency_all_ms": "all_", "service_ms": "service_"}
"""Summary latency attribute → column prefix in ``summaries`` (``p95_ms``, ``all_p95_ms``…)."""
_LATENCY_COUNTS = {
    "latency_ms": "latency_count",
    "latency_all_ms": "all_count",
    "service_ms": "service_count",
}
"""Summary latency attribute → ``summaries`` column of its histogram's count."""


def _m001_initial(db: Database) -> None:
    """Create the tables of the first schema."""
    fk_run = [("run_id", "runs", "id")]
    db.table("runs").create(
        {
            "id": int,
            "run_key": str,
            "experiment": str,
            "variant": str,
            "title": str,
            "status": str,
            "reason": str,
            "started_at": str,
            "started_at_unix": float,
            "ended_at": str,
            "ended_at_unix": float,
            "config": str,
            "lab_version": str,
            "host_cores": int,
            "host_memory_bytes": int,
            "host_python": str,
            "host_platform": str,
            "target_url": str,
            "target_pid": int,
            "target_startup_s": float,
        },
        pk="id",
        not_null=["experiment", "variant", "status", "started_at", "started_at_unix", "config"],
    )
    db.table("runs").create_index(["experiment"])
    db.table("runs").create_index(["run_key"])
    db.table("intervals").create(
        {
            "run_id": int,
            "t_s": float,
            "duration_s": float,
            "requests": int,
            "ok": int,
            "errors": int,
            "bytes": int,
            "dropped": int,
            "interrupted": int,
            "active_vus": int,
            "target_rate": float,
            "stage": int,
            "errors_by_class": str,
            "histogram": bytes,
            "histogram_all": bytes,
            "histogram_service": bytes,
            "p50_ms": float,
            "p90_ms": float,
            "p95_ms": float,
            "p99_ms": float,
            "max_ms": float,
        },
        foreign_keys=fk_run,
        not_null=["run_id", "t_s"],
    )
    db.table("intervals").create_index(["run_id"])
    db.table("resources").create(
        {
            "run_id": int,
            "t_s": float,
            "role": str,
            "pid": int,
            "cpu_percent": float,
            "cpu_seconds": float,
            "rss_bytes": int,
            "num_threads": int,
            "num_fds": int,
            "processes": int,
            "detail": str,
        },
        foreign_keys=fk_run,
        not_null=["run_id", "t_s", "role"],
    )
    db.table("resources").create_index(["run_id"])
    db.table("errors").create(
        {"run_id": int, "class": str, "status": int, "message": str, "count": int},
        foreign_keys=fk_run,
        not_null=["run_id", "class"],
    )
    db.table("errors").create_index(["run_id"])
    db.table("run_events").create(
        {"run_id": int, "t_s": float, "kind": str, "stage": int, "level": float, "reason": str},
        foreign_keys=fk_run,
        not_null=["run_id", "kind"],
    )
    db.table("run_events").create_index(["run_id"])
    summary_cols: dict[str, Any] = {
        "run_id": int,
        "requests": int,
        "ok": int,
        "errors": int,
        "dropped": int,
        "interrupted": int,
        "bytes": int,
        "window_s": float,
        "throughput_rps": float,
        "attempts_rps": float,
    }
    for attr, prefix in _LATENCY_PREFIXES.items():
        for name in _LATENCY_FIELDS:
            summary_cols[f"{prefix}{name}_ms"] = float
        summary_cols[_LATENCY_COUNTS[attr]] = int
    summary_cols |= {
        "error_rate": float,
        "errors_by_class": str,
        "target_cpu_s_per_1k": float,
        "target_peak_rss_bytes": int,
        "generator_cpu_s_per_1k": float,
        "generator_peak_cpu_percent": float,
        "cache_hit_ratio": float,
        "target_stats": str,
    }
    db.table("summaries").create(summary_cols, pk="run_id", foreign_keys=fk_run)


def _m002_lab_process(db: Database) -> None:
    """Remember which lab process runs a run, so one killed mid-run can be told apart
    from one still running (in another terminal)."""
    db.table("runs").add_column("lab_pid", int)
    db.table("runs").add_column("lab_host", str)


def _m003_generator_health(db: Database) -> None:
    """The generator's self-monitoring: its CPU and event-loop lag per interval, and the
    generator-bound flag of a run."""
    intervals = db.table("intervals")
    intervals.add_column("generator_cpu_percent", float)
    intervals.add_column("loop_lag_p99_ms", float)
    intervals.add_column("loop_lag_max_ms", float)
    intervals.add_column("histogram_lag", bytes)
    summaries = db.table("summaries")
    summaries.add_column("generator_bound", int)
    summaries.add_column("generator_bound_reason", str)
    summaries.add_column("loop_lag_p99_ms", float)


def _m004_services_and_target_series(db: Database) -> None:
    """Backing services of a run, the target's gauges over time, and the generator's
    mean requests in flight per interval (for Little's law)."""
    db.table("runs").add_column("services", str)
    db["target_samples"].create(
        {"run_id": int, "t_s": float, "name": str, "value": float},
        foreign_keys=[("run_id", "runs", "id")],
        not_null=["run_id", "t_s", "name"],
    )
    db["target_samples"].create_index(["run_id", "t_s"])
    db.table("intervals").add_column("in_flight_mean", float)


def _m005_sweeps(db: Database) -> None:
    """Sweeps (one per variant of a swept experiment, its levels being runs) and the
    model fits of each sweep."""
    db["sweeps"].create(
        {"id": int, "sweep_key": str, "experiment": str, "variant": str, "parameter": str,
         "levels": str, "slo_p99_ms": float, "created_at": str, "created_at_unix": float,
         "capacity_rps": float, "report": str},
        pk="id", not_null=["sweep_key", "experiment", "variant", "parameter"],
    )
    db["sweeps"].create_index(["sweep_key"], unique=True)
    runs = db.table("runs")
    runs.add_column("sweep_id", int)
    runs.add_column("sweep_level", float)
    db["fits"].create(
        {"id": int, "sweep_id": int, "model": str, "lambda": float, "sigma": float,
         "kappa": float, "lambda_stderr": float, "sigma_stderr": float, "kappa_stderr": float,
         "r2": float, "n_star": float, "x_max": float, "verdict": str, "points": int,
         "created_at": str},
        pk="id", foreign_keys=[("sweep_id", "sweeps", "id")], not_null=["sweep_id", "model"],
    )
    db["fits"].create_index(["sweep_id"])


def _m006_lab_process_start(db: Database) -> None:
    """The lab process's start time beside its pid: a pid the kernel gave to a newer
    process after the lab was killed is then not taken for the lab still running."""
    db.table("runs").add_column("lab_started_at_unix", float)


def _m007_offered_load(db: Database) -> None:
    """Offered against achieved load of a run, and the flag when it was not achieved
    (``lab.analysis.offered``)."""
    summaries = db.table("summaries")
    summaries.add_column("offered_rps", float)
    summaries.add_column("achieved_rps", float)
    summaries.add_column("load_not_achieved", int)
    summaries.add_column("load_not_achieved_reason", str)


_MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _m001_initial,
    _m002_lab_process,
    _m003_generator_health,
    _m004_services_and_target_series,
    _m005_sweeps,
    _m006_lab_process_start,
    _m007_offered_load,
)
"""Schema steps in order; step ``n`` (1-based) brings ``PRAGMA user_version`` to ``n``."""

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this code writes."""

_CHILD_TABLES = ("intervals", "resources", "errors", "run_events", "summaries", "target_samples")
"""Tables whose rows belong to one run (``run_id``); ``sweeps`` and ``fits`` belong to a
sweep: deleting one of its runs removes the sweep's fits (see ``Store.delete_run``)."""


# --------------------------------------------------------------------------- store


_BUG_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.NotSupportedError)
"""SQLite errors that mean a bug in the lab, not a problem of the file: left as they are."""


_DAMAGED_HINT = " ('lab doctor --db {path}' checks it; sqlite3's .recover command saves what is left)"


def _sqlite_problem(path: Path, doing: str, exc: sqlite3.Error) -> str:
    """One line for a SQLite failure: the file, what could not be done, SQLite's reason,
    and what the user can do about it."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    lowered = reason.lower()
    if "malformed" in lowered or "corrupt" in lowered:
        hint = "; the file is damaged" + _DAMAGED_HINT.format(path=path)
    elif "readonly" in lowered or "read-only" in lowered:
        hint = "; it cannot be written here (pass --db with a file this user can write)"
    elif "disk is full" in lowered:
        hint = "; free some disk space, or pass --db with a file on another disk"
    elif "i/o error" in lowered:
        hint = "; the file (or its -wal) was made read-only or immutable, or the disk failed"
    elif "locked" in lowered or "busy" in lowered:
        hint = (f"; another program held its lock for more than {BUSY_TIMEOUT_MS // 1000} s")
    else:
        hint = ""
    return f"{path}: cannot {doing} the results database: {reason}{hint}"


@contextmanager
def _translated(path: Path, doing: str) -> Iterator[None]:
    """Turn SQLite's failures on ``path`` into ``StoreError`` (one line)."""
    try:
        yield
    except sqlite3.Error as exc:
        if isinstance(exc, _BUG_ERRORS):
            raise
        raise StoreError(_sqlite_problem(path, doing, exc)) from exc


def open_store(db_path: str | Path, *, readonly: bool = False, check: bool = False) -> Store:
    """Open a results database the way every command does: each problem is a
    ``StoreError`` whose message is the one line to show.

    Args:
        db_path: the file (``--db`` / ``LAB_DB``).
        readonly: read only; the file must exist, nothing is created or changed.
        check: also read the whole file (``Store.check``), as before a run: damage
            anywhere in it is refused here rather than met in the middle of a run.

    Raises:
        StoreError: the path is empty or a directory, the file is missing (``readonly``),
            is not a results database, is damaged (``check``), or cannot be opened, read
            or written.
    """
    text = str(db_path)
    if not text:
        raise StoreError("--db: the results database path is empty")
    path = Path(text)
    if readonly and not path.exists():
        raise StoreError(f"{text}: no such results database (run an experiment first, or pass --db)")
    if path.is_dir():
        raise StoreError(f"{text}: is a directory, not a results database (pass --db with a file)")
    try:
        store = Store(path, readonly=readonly)
    except OSError as exc:
        raise StoreError(f"{text}: cannot open results database: {exc.strerror or exc}") from exc
    if check:
        try:
            problems = store.check()
        except BaseException:
            store.close()
            raise
        if problems:
            store.close()
            raise StoreError(f"{text}: the results database is damaged: {problems[0]}"
                             f"{_DAMAGED_HINT.format(path=text)}")
    return store


class Store:
    """The results database: opened (and created or migrated) on construction.

    Args:
        path: the SQLite file; created with its parent directories when missing.

    Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        """Open the results database.

        Args:
            path: the SQLite file; created (with its schema) unless ``readonly``. Its
                directory must exist.
            readonly: open for reading only: nothing is created or changed, so reading a
                results.db on a read-only medium works.

        Opened for writing, it proves that it can write (one committed write
        transaction: a read-only or immutable file, a read-only directory or a full disk
        fail here, not in the middle of a run), then marks the runs whose lab process was
        killed (``mark_abandoned_runs``); read-only, it shows them as marked without
        storing it. ``check()`` finds damage further inside the file.

        Raises:
            StoreError: the file is not a Scalability Lab results database (or, when
                ``readonly``, does not exist), its directory does not exist, or SQLite
                cannot open, read or (unless ``readonly``) write it.
        """
        self.path = Path(path)
        """The database file."""
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly:
            if not self.path.is_file():
                raise StoreError(f"{path}: no such results database")
            with _translated(self.path, "open"):
                conn = self._connect_readonly()
        else:
            if str(path) != ":memory:" and not self.path.parent.is_dir():
                raise StoreError(f"{path}: directory {str(self.path.parent)!r} does not exist")
            with _translated(self.path, "open"):
                conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                                       check_same_thread=False)
        self._db = Database(conn, execute_plugins=False)
        try:
            with _translated(self.path, "open"):
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                self._check_is_ours()
            if not readonly:
                with _translated(self.path, "write"):
                    self._db.enable_wal()
                    self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
                self._prove_writable()
                self.mark_abandoned_runs()
        except BaseException:
            conn.close()
            raise

    def _prove_writable(self) -> None:
        """Commit one write transaction (the schema version, rewritten unchanged): SQLite
        opens a file it may not write read-only without a word, and a full disk or an
        immutable file shows only when a page is written."""
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute(f"PRAGMA user_version = {version}")

    def check(self) -> list[str]:
        """SQLite's ``PRAGMA quick_check`` of the whole file: every page and index read.

        Returns:
            The problems found, one line each, at most 10 (empty when the file is sound).

        Raises:
            StoreError: the file is so damaged the check cannot run.
        """
        with self._lock, _translated(self.path, "check"):
            rows = self._db.execute("PRAGMA quick_check(10)").fetchall()
        # SQLite may put several lines in one row ("*** in database main ***\nPage 6: ...").
        problems = [" ".join(str(row[0]).split()) for row in rows]
        return [] if problems == ["ok"] else problems

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A WAL database in a directory we cannot write (no -shm file can be made):
            # read it as an immutable snapshot.
            conn.close()
            conn = sqlite3.connect(uri.replace("mode=ro", "immutable=1"), uri=True,
                                   check_same_thread=False)
        return conn

    def _check_is_ours(self) -> None:
        """Refuse a SQLite file that holds other data, rather than add tables to it."""
        tables = set(self._db.table_names())
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if self.readonly and "runs" not in tables:
            raise StoreError(f"{self.path}: not a Scalability Lab results database (no runs table)")
        if tables and (version == 0 or "runs" not in tables):
            raise StoreError(f"{self.path}: not a Scalability Lab results database "
                             f"(it holds other tables: {', '.join(sorted(tables)[:5])})")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer lab (schema {version}; this lab "
                             f"reads up to {SCHEMA_VERSION}); upgrade the lab")

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection. The store must not be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The database's applied migration steps (``PRAGMA user_version``)."""
        with self._lock, _translated(self.path, "read"):
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def journal_mode(self) -> str:
        """SQLite journal mode, ``wal`` once opened."""
        with self._lock, _translated(self.path, "read"):
            return str(self._db.journal_mode)

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One short write transaction, taking the write lock up front (waits for it
        up to the busy timeout instead of failing on a lock upgrade).

        Raises:
            StoreError: SQLite could not write (the transaction is rolled back).
        """
        with self._lock, _translated(self.path, "write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._rollback()
                raise
            try:
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # After a failed write (an I/O error, a full disk) SQLite may have rolled back
        # already; the error that matters is the one being raised.
        with contextlib.suppress(sqlite3.Error):
            self._db.rollback()

    def _table(self, name: str) -> Table:
        return self._db.table(name)

    def _migrate(self) -> None:
        if self.schema_version >= SCHEMA_VERSION:
            return
        with self._write() as db:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[number - 1](db)
                db.execute(f"PRAGMA user_version = {number}")

    # ----------------------------------------------------------------- writes

    def insert_run(self, event: RunStarted) -> int:
        """Insert a ``running`` run for a ``RunStarted`` event.

        The plan is duck-typed: ``experiment``, ``variant``, ``config()`` and, when
        present, ``title``.

        Returns:
            The new run's id.
        """
        plan = event.plan
        row = {
            "run_key": event.run_key,
            "experiment": plan.experiment,
            "variant": plan.variant,
            "title": getattr(plan, "title", "") or "",
            "status": "running",
            "reason": None,
            "started_at": iso_utc(event.started_at),
            "started_at_unix": float(event.started_at),
            "ended_at": None,
            "ended_at_unix": None,
            "config": _dumps(plan.config()),
            "lab_version": event.lab_version,
            "host_cores": event.host.cores,
            "host_memory_bytes": event.host.memory_bytes,
            "host_python": event.host.python,
            "host_platform": event.host.platform,
            "target_url": None,
            **{f"lab_{k}": v for k, v in this_lab().items()},
        }
        point = getattr(plan, "sweep", None)
        with self._write() as db:
            if point is not None:
                found = db.execute("SELECT id FROM sweeps WHERE sweep_key = ?", [point.key]).fetchone()
                if found is None:
                    sweep = self._table("sweeps").insert({
                        "sweep_key": point.key, "experiment": plan.experiment,
                        "variant": plan.variant, "parameter": point.parameter,
                        "levels": json.dumps(list(point.levels)), "slo_p99_ms": point.slo_p99_ms,
                        "created_at": iso_utc(event.started_at),
                        "created_at_unix": float(event.started_at),
                        "capacity_rps": None, "report": None,
                    })
                    sweep_id = int(sweep.last_pk)
                else:
                    sweep_id = int(found[0])
                row |= {"sweep_id": sweep_id, "sweep_level": float(point.level)}
            table = self._table("runs").insert(row)
            return int(table.last_pk)

    def save_sweep_result(self, sweep_id: int, report: dict[str, Any], capacity_rps: float | None,
                          fits: Sequence[dict[str, Any]]) -> None:
        """Store a finished sweep's per-level report, capacity at the SLO and model fits
        (each a ``fits`` row without ``id``/``sweep_id``), replacing earlier ones."""
        now = iso_utc(datetime.now(UTC).timestamp())
        with self._write():
            self._table("sweeps").update(sweep_id, {"report": _dumps(report),
                                                    "capacity_rps": capacity_rps})
            self._table("fits").delete_where("sweep_id = ?", [sweep_id])
            for fit in fits:
                self._table("fits").insert({**fit, "sweep_id": sweep_id, "created_at": now})

    def mark_abandoned_runs(self) -> list[int]:
        """Mark as failed the ``running`` runs whose lab process on this host is gone
        (killed with SIGKILL, or the machine lost power), and summarise each from the
        intervals and resource readings it stored (see ``_abandoned``).

        Runs of a lab that still runs (same pid and start time), and runs recorded on
        another host, are never touched. Called whenever a store is opened for writing.

        Returns:
            The ids of the runs marked.
        """
        marked = []
        for row in self._query("SELECT * FROM runs WHERE status = 'running'"):
            if not self._owner_gone(row):
                continue
            reason, summary = self._abandoned(row)
            with self._write() as db:
                cur = db.execute("UPDATE runs SET status = 'failed', reason = ? "
                                 "WHERE id = ? AND status = 'running'", [reason, row["id"]])
                if cur.rowcount and summary is not None:
                    self._table("summaries").insert(_summary_row(row["id"], summary, {}),
                                                    replace=True)
            if cur.rowcount:
                marked.append(int(row["id"]))
        return marked

    @staticmethod
    def _owner_gone(row: dict[str, Any]) -> bool:
        """Whether a ``running`` run's lab process is known to be gone (this host only)."""
        if row["status"] != "running" or row.get("lab_host") != socket.gethostname():
            return False
        return not owner_alive(row.get("lab_pid"), row.get("lab_started_at_unix"),
                               started_by_unix=row["started_at_unix"])

    def _abandoned(self, row: dict[str, Any]) -> tuple[str, Summary | None]:
        """The reason and summary of a run whose lab process died mid-run: figures over
        what it stored after the warm-up, up to its last stored interval (none when that
        is under ``MIN_MEASURED_S``, as for any run that stopped early)."""
        load = _loads(row["config"]).get("load") or {}
        warmup = float(load.get("warmup") or 0.0)
        intervals = self.interval_counts(int(row["id"]))
        user_levels = [(e.t_s, e.level) for e in self.run_events(int(row["id"])) if e.reason == "user"]
        summary = summarise(intervals, self.cpu_readings(int(row["id"])), warmup,
                            min_measured_s=MIN_MEASURED_S,
                            offered=offered_load(intervals, load, warmup, user_levels))
        what = ("figures from what it stored" if summary is not None
                else too_short_note(intervals, warmup) or "nothing measured")
        return (f"killed: the lab process (pid {row.get('lab_pid')}) ended without finishing "
                f"this run; {what}", summary)

    def set_target(self, run_id: int, event: TargetReady) -> None:
        """Record the target's URL, root PID and startup time for a run."""
        updates = {
            "target_url": event.url,
            "target_pid": event.pid,
            "target_startup_s": event.startup_s,
        }
        with self._write():
            self._table("runs").update(run_id, updates)

    def add_interval(self, run_id: int, event: IntervalStats) -> None:
        """Append one interval of a run."""
        row = {
            "run_id": run_id,
            "t_s": event.t_s,
            "duration_s": event.duration_s,
            "requests": event.requests,
            "ok": event.ok,
            "errors": event.errors,
            "bytes": event.bytes,
            "dropped": event.dropped,
            "interrupted": event.interrupted,
            "active_vus": event.active_vus,
            "target_rate": event.target_rate,
            "stage": event.stage,
            "errors_by_class": _dumps(event.errors_by_class),
            "histogram": bytes(event.histogram),
            "histogram_all": bytes(event.histogram_all),
            "histogram_service": bytes(event.histogram_service),
            "p50_ms": event.p50_ms,
            "p90_ms": event.p90_ms,
            "p95_ms": event.p95_ms,
            "p99_ms": event.p99_ms,
            "max_ms": event.max_ms,
            "generator_cpu_percent": event.generator_cpu_percent,
            "loop_lag_p99_ms": event.loop_lag_p99_ms,
            "loop_lag_max_ms": event.loop_lag_max_ms,
            "histogram_lag": bytes(event.histogram_lag),
            "in_flight_mean": getattr(event, "in_flight_mean", None),
        }
        with self._write():
            self._table("intervals").insert(row)

    def add_target_sample(self, run_id: int, event: TargetSample) -> None:
        """Append the target's gauges read at one instant."""
        rows = [{"run_id": run_id, "t_s": event.t_s, "name": name, "value": value}
                for name, value in event.gauges.items()]
        if rows:
            with self._write():
                self._table("target_samples").insert_all(rows)

    def set_services(self, run_id: int, event: ServicesReady) -> None:
        """Remember which backing services a run had (name → URL) and what was left out."""
        with self._write():
            self._table("runs").update(
                run_id, {"services": _dumps({"running": event.services, "notes": event.notes})})

    def add_resource(self, run_id: int, event: ResourceSample) -> None:
        """Append one resource reading of a run."""
        row = {
            "run_id": run_id,
            "t_s": event.t_s,
            "role": event.role,
            "pid": event.pid,
            "cpu_percent": event.cpu_percent,
            "cpu_seconds": event.cpu_seconds,
            "rss_bytes": event.rss_bytes,
            "num_threads": event.num_threads,
            "num_fds": event.num_fds,
            "processes": event.processes,
            "detail": _dumps(event.detail),
        }
        with self._write():
            self._table("resources").insert(row)

    def add_error(self, run_id: int, event: ErrorSample) -> None:
        """Append the errors of one class and status of a run."""
        row = {
            "run_id": run_id,
            "class": event.error_class,
            "status": event.status,
            "message": event.message,
            "count": event.count,
        }
        with self._write():
            self._table("errors").insert(row)

    def add_run_event(self, run_id: int, event: LoadChanged) -> None:
        """Append a load change of a run (``kind`` = ``load_changed``)."""
        row = {
            "run_id": run_id,
            "t_s": event.t_s,
            "kind": "load_changed",
            "stage": event.stage,
            "level": event.level,
            "reason": event.reason,
        }
        with self._write():
            self._table("run_events").insert(row)

    def finish_run(self, run_id: int, event: RunFinished) -> None:
        """Set a run's final status, reason and end; store its summary when it has one.

        Raises:
            ValueError: the status is not one of ``RUN_STATUSES``.
        """
        if event.status not in RUN_STATUSES:
            raise ValueError(f"run status {event.status!r} is not one of {', '.join(RUN_STATUSES)}")
        updates = {
            "status": event.status,
            "reason": event.reason,
            "ended_at": iso_utc(event.ended_at),
            "ended_at_unix": float(event.ended_at),
        }
        with self._write():
            self._table("runs").update(run_id, updates)
            if event.summary is not None:
                row = _summary_row(run_id, event.summary, event.target_stats)
                self._table("summaries").insert(row, replace=True)

    def copy_run_from(self, source: Store, run_id: int) -> int:
        """Copy one run, its row and every row that belongs to it, from another results
        database into this one (not its sweep: the copy is a plain run).

        Returns:
            The copy's id here.

        Raises:
            KeyError: ``source`` has no run with this id.
            StoreError: ``source`` cannot be read or this database cannot be written.
        """
        found = source._query("SELECT * FROM runs WHERE id = ?", [run_id])
        if not found:
            raise KeyError(f"no run with id {run_id}")
        row = {k: v for k, v in found[0].items() if k not in ("id", "sweep_id", "sweep_level")}
        children = {table: source._query(f"SELECT * FROM {table} WHERE run_id = ?", [run_id])
                    for table in _CHILD_TABLES}
        with self._write():
            copy_id = int(self._table("runs").insert(row).last_pk)
            for table, rows in children.items():
                if rows:
                    self._table(table).insert_all([{**r, "run_id": copy_id} for r in rows])
        return copy_id

    def delete_run(self, run_id: int) -> int | None:
        """Delete a run and all its rows (intervals, resources, errors, events, summary).

        A run that is a level of a sweep takes the sweep's stored results with it: its fits,
        report and capacity were computed from every level, so they are removed rather than
        left stale (``lab.analysis.sweep.delete_run_and_refit`` fits again from the levels
        left). The sweep itself goes with its last run.

        Returns:
            The id of the sweep the run was a level of and that still has runs (to refit),
            else None.

        Raises:
            KeyError: no run has this id.
        """
        with self._write() as db:
            found = db.execute("SELECT sweep_id FROM runs WHERE id = ?", [run_id]).fetchone()
            if found is None:
                raise KeyError(f"no run with id {run_id}")
            for table in _CHILD_TABLES:
                self._table(table).delete_where("run_id = ?", [run_id])
            self._table("runs").delete_where("id = ?", [run_id])
            sweep_id = found[0]
            if sweep_id is None:
                return None
            self._table("fits").delete_where("sweep_id = ?", [sweep_id])
            if db.execute("SELECT 1 FROM runs WHERE sweep_id = ? LIMIT 1", [sweep_id]).fetchone() is None:
                self._table("sweeps").delete_where("id = ?", [sweep_id])
                return None
            self._table("sweeps").update(sweep_id, {"report": None, "capacity_rps": None})
            return int(sweep_id)

    # ----------------------------------------------------------------- reads

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock, _translated(self.path, "read"):
            return list(self._db.query(sql, list(params)))

    def _records(self, rows: list[dict[str, Any]]) -> list[RunRecord]:
        ids = [row["id"] for row in rows]
        summaries: dict[int, dict[str, Any]] = {}
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ", ".join("?" for _ in chunk)
            for srow in self._query(f"SELECT * FROM summaries WHERE run_id IN ({marks})", chunk):
                summaries[srow["run_id"]] = srow
        records = []
        for row in rows:
            if self._owner_gone(row):
                # Not marked yet (a read-only store, or its lab died after this store was
                # opened): shown as the next store opened for writing will store it.
                reason, summary = self._abandoned(row)
                record = _run_record({**row, "status": "failed", "reason": reason}, None)
                records.append(replace(record, summary=summary))
            else:
                records.append(_run_record(row, summaries.get(row["id"])))
        return records

    def list_runs(self, experiment: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Stored runs, newest first.

        Args:
            experiment: only runs of this experiment; None for all.
            limit: at most this many runs; None for all.
        """
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if experiment is not None:
            sql += " WHERE experiment = ?"
            params.append(experiment)
        sql += " ORDER BY started_at_unix DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._records(self._query(sql, params))

    def get_run(self, run_id: int) -> RunRecord:
        """One run by id.

        Raises:
            KeyError: ``no run with id N``.
        """
        return self.get_runs([run_id])[0]

    def get_runs(self, ids: Sequence[int]) -> list[RunRecord]:
        """Runs by id, in the order given.

        Raises:
            KeyError: naming the first id that has no run.
        """
        wanted = [int(i) for i in ids]
        unique = list(dict.fromkeys(wanted))
        rows: list[dict[str, Any]] = []
        for chunk_start in range(0, len(unique), 500):
            chunk = unique[chunk_start : chunk_start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows += self._query(f"SELECT * FROM runs WHERE id IN ({marks})", chunk)
        by_id = {record.id: record for record in self._records(rows)}
        for run_id in wanted:
            if run_id not in by_id:
                raise KeyError(f"no run with id {run_id}")
        return [by_id[run_id] for run_id in wanted]

    def experiments(self) -> list[str]:
        """Names of the experiments that have stored runs, alphabetically."""
        rows = self._query("SELECT DISTINCT experiment FROM runs ORDER BY experiment")
        return [row["experiment"] for row in rows]

    def intervals(self, run_id: int) -> list[IntervalRow]:
        """A run's intervals in time order (empty for an unknown run)."""
        rows = self._query("SELECT * FROM intervals WHERE run_id = ? ORDER BY t_s, rowid", [run_id])
        return [
            IntervalRow(
                run_id=r["run_id"],
                t_s=r["t_s"],
                duration_s=r["duration_s"],
                requests=r["requests"],
                ok=r["ok"],
                errors=r["errors"],
                bytes=r["bytes"],
                dropped=r["dropped"],
                interrupted=r["interrupted"],
                active_vus=r["active_vus"],
                target_rate=r["target_rate"],
                stage=r["stage"],
                errors_by_class=_loads(r["errors_by_class"]),
                histogram=bytes(r["histogram"] or b""),
                histogram_all=bytes(r["histogram_all"] or b""),
                histogram_service=bytes(r["histogram_service"] or b""),
                p50_ms=r["p50_ms"],
                p90_ms=r["p90_ms"],
                p95_ms=r["p95_ms"],
                p99_ms=r["p99_ms"],
                max_ms=r["max_ms"],
                generator_cpu_percent=r["generator_cpu_percent"],
                loop_lag_p99_ms=r["loop_lag_p99_ms"],
                loop_lag_max_ms=r["loop_lag_max_ms"],
                histogram_lag=bytes(r["histogram_lag"] or b""),
                in_flight_mean=r.get("in_flight_mean"),
            )
            for r in rows
        ]

    def sweep_ids_of(self, run_ids: Sequence[int]) -> list[int]:
        """The sweeps the given runs belong to, in first-seen order."""
        out: list[int] = []
        for run_id in run_ids:
            rows = self._query("SELECT sweep_id FROM runs WHERE id = ?", [run_id])
            if rows and rows[0]["sweep_id"] is not None and rows[0]["sweep_id"] not in out:
                out.append(int(rows[0]["sweep_id"]))
        return out

    def get_sweep(self, sweep_id: int) -> SweepRecord:
        """One sweep with its runs (in level order) and fits.

        Raises:
            KeyError: ``no sweep with id N``.
        """
        rows = self._query("SELECT * FROM sweeps WHERE id = ?", [sweep_id])
        if not rows:
            raise KeyError(f"no sweep with id {sweep_id}")
        row = rows[0]
        run_rows = self._query("SELECT * FROM runs WHERE sweep_id = ? ORDER BY started_at_unix, id",
                               [sweep_id])
        fits = self._query("SELECT * FROM fits WHERE sweep_id = ? ORDER BY id", [sweep_id])
        return SweepRecord(
            id=row["id"], experiment=row["experiment"], variant=row["variant"],
            parameter=row["parameter"], levels=json.loads(row["levels"] or "[]"),
            slo_p99_ms=row["slo_p99_ms"], created_at=row["created_at"],
            capacity_rps=row["capacity_rps"], report=_loads(row["report"]),
            runs=self._records(run_rows), fits=[dict(f) for f in fits],
        )

    def list_sweeps(self, experiment: str | None = None) -> list[SweepRecord]:
        """Every sweep (newest first), optionally of one experiment."""
        sql, params = "SELECT id FROM sweeps", []
        if experiment is not None:
            sql += " WHERE experiment = ?"
            params.append(experiment)
        ids = [r["id"] for r in self._query(sql + " ORDER BY created_at_unix DESC, id DESC", params)]
        return [self.get_sweep(i) for i in ids]

    def target_samples(self, run_id: int) -> list[tuple[float, str, float]]:
        """A run's target gauge readings as ``(t_s, name, value)``, time order."""
        rows = self._query("SELECT t_s, name, value FROM target_samples WHERE run_id = ? "
                           "ORDER BY t_s, rowid", [run_id])
        return [(r["t_s"], r["name"], r["value"]) for r in rows]

    def interval_counts(self, run_id: int) -> list[IntervalCounts]:
        """A run's intervals as ``summarise()`` input, in time order."""
        return [
            IntervalCounts(
                t_s=iv.t_s,
                duration_s=iv.duration_s,
                ok=iv.ok,
                errors=iv.errors,
                dropped=iv.dropped,
                interrupted=iv.interrupted,
                bytes=iv.bytes,
                errors_by_class=iv.errors_by_class,
                histogram=iv.histogram,
                histogram_all=iv.histogram_all,
                histogram_service=iv.histogram_service,
                generator_cpu_percent=iv.generator_cpu_percent,
                histogram_lag=iv.histogram_lag,
            )
            for iv in self.intervals(run_id)
        ]

    def resources(self, run_id: int, role: str | None = None) -> list[ResourceRow]:
        """A run's resource readings in time order, optionally of one role only."""
        sql = "SELECT * FROM resources WHERE run_id = ?"
        params: list[Any] = [run_id]
        if role is not None:
            sql += " AND role = ?"
            params.append(role)
        rows = self._query(sql + " ORDER BY t_s, rowid", params)
        return [
            ResourceRow(
                run_id=r["run_id"],
                t_s=r["t_s"],
                role=r["role"],
                pid=r["pid"],
                cpu_percent=r["cpu_percent"],
                cpu_seconds=r["cpu_seconds"],
                rss_bytes=r["rss_bytes"],
                num_threads=r["num_threads"],
                num_fds=r["num_fds"],
                processes=r["processes"],
                detail=_loads(r["detail"]),
            )
            for r in rows
        ]

    def cpu_readings(self, run_id: int) -> list[CpuReading]:
        """A run's resource readings as ``summarise()`` input, in time order."""
        return [
            CpuReading(
                t_s=r.t_s,
                role=r.role,
                pid=r.pid,
                cpu_percent=r.cpu_percent,
                cpu_seconds=r.cpu_seconds,
                rss_bytes=r.rss_bytes,
            )
            for r in self.resources(run_id)
        ]

    def errors(self, run_id: int) -> list[ErrorRow]:
        """A run's errors, most frequent first."""
        rows = self._query("SELECT * FROM errors WHERE run_id = ? ORDER BY count DESC, rowid", [run_id])
        return [
            ErrorRow(
                run_id=r["run_id"],
                error_class=r["class"],
                status=r["status"],
                message=r["message"] or "",
                count=r["count"],
            )
            for r in rows
        ]

    def run_events(self, run_id: int) -> list[RunEventRow]:
        """A run's load changes in time order."""
        rows = self._query("SELECT * FROM run_events WHERE run_id = ? ORDER BY t_s, rowid", [run_id])
        return [
            RunEventRow(
                run_id=r["run_id"],
                t_s=r["t_s"],
                kind=r["kind"],
                stage=r["stage"],
                level=r["level"],
                reason=r["reason"] or "",
            )
            for r in rows
        ]


# --------------------------------------------------------------------------- recorder


@dataclass(frozen=True)
class RecordingProblem:
    """A run whose events could not all be written to its results database."""

    run_key: str
    """The engine's key of the run."""
    variant: str
    """The run's variant."""
    run_id: int | None
    """The run's id in the results database; None when not even its start was stored."""
    since_s: float | None
    """Seconds after the load began of the first event that could not be written; None
    when the failure came before the load began."""
    error: str
    """The write failure, one line naming the file (``StoreError``)."""
    kept_in: Path | None
    """A results database holding the run as run 1 (``<db>.unsaved-<key>.db`` beside the
    database, else in the temporary directory): all of it, or, when what the database
    had stored could not be read back (``kept_whole`` False), its start and every
    event from the failure on; None when that could not be written either."""
    kept_whole: bool = True
    """Whether ``kept_in`` holds the whole run."""
    kept_error: str | None = None
    """Why the run could not be kept elsewhere either, when ``kept_in`` is None."""
    summary: Summary | None = None
    """The run's headline figures, as the engine computed them."""

    def describe(self) -> str:
        """The one line a user reads: what failed, what is stored where."""
        which = (f"run {self.run_id} ({self.variant})" if self.run_id is not None
                 else f"the {self.variant} run")
        if self.run_id is None:
            stored = "nothing of it is stored there"
        elif self.since_s is None:
            stored = "it is stored without its measurements"
        else:
            stored = f"it is stored only up to {self.since_s:.0f} s"
        if self.kept_in is not None:
            what = "all of it" if self.kept_whole else "the rest"
            kept = f"{what} is kept in {self.kept_in} (lab show --db {self.kept_in} 1)"
        else:
            figures = ""
            if self.summary is not None:
                figures = (f"; its summary: {self.summary.requests} requests, "
                           f"{self.summary.throughput_rps:.1f} req/s, "
                           f"p95 {self.summary.latency_ms.p95:.3g} ms")
            kept = f"what it measured from then on is lost ({self.kept_error}){figures}"
        return f"lab: {self.error}; {which}: {stored}; {kept}"


def _store_event(store: Store, run_id: int, event: Event) -> None:
    """Write one event (not ``RunStarted``) of run ``run_id``."""
    if isinstance(event, IntervalStats):
        store.add_interval(run_id, event)
    elif isinstance(event, ResourceSample):
        store.add_resource(run_id, event)
    elif isinstance(event, ErrorSample):
        store.add_error(run_id, event)
    elif isinstance(event, LoadChanged):
        store.add_run_event(run_id, event)
    elif isinstance(event, TargetReady):
        store.set_target(run_id, event)
    elif isinstance(event, TargetSample):
        store.add_target_sample(run_id, event)
    elif isinstance(event, ServicesReady):
        store.set_services(run_id, event)
    elif isinstance(event, RunFinished):
        store.finish_run(run_id, event)


class Recorder:
    """An engine listener that writes a run's events to a ``Store`` as they arrive.

    Each event is one short transaction, so a run that fails midway keeps every interval
    it measured. Events for run keys it has not seen start (no ``RunStarted``) are
    ignored.

    A write that fails (the disk filled up, the file was made read-only or immutable, a
    lock was held too long) never raises into the engine, and is not retried on every
    event (each try may wait the busy timeout, on the engine's event loop): from then
    on the run's events are kept in memory and, when it finishes, written with its start
    to a results database of their own (``RecordingProblem.kept_in``), and the run's
    row, when it has one, is marked failed with a pointer to it if the database takes
    that write. ``problems`` lists each such run, with the line to show.

    Args:
        store: where to write.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        """Where the events go."""
        self.last_run_id: int | None = None
        """Id of the run most recently started; None before any."""
        self.problems: list[RecordingProblem] = []
        """Runs that could not be written in full, in the order they finished."""
        self._ids: dict[str, int] = {}
        self._started: dict[str, RunStarted] = {}
        self._backlog: dict[str, list[Event]] = {}
        self._failure: dict[str, tuple[str, float | None]] = {}

    def run_id_for(self, run_key: str) -> int:
        """The stored id of a run this recorder saw start.

        Raises:
            KeyError: the run key is unknown, or its start could not be stored.
        """
        return self._ids[run_key]

    def problem_of(self, run_key: str) -> RecordingProblem | None:
        """The recording problem of a finished run, None when it was stored in full."""
        return next((p for p in self.problems if p.run_key == run_key), None)

    def __call__(self, event: Event) -> None:
        """Record one event."""
        key = event.run_key
        if isinstance(event, RunStarted):
            self._started[key] = event
            try:
                run_id = self.store.insert_run(event)
            except StoreError as exc:
                self._fail(event, exc)
                return
            self._ids[key] = run_id
            self.last_run_id = run_id
            return
        if key not in self._started:
            return
        if key not in self._backlog:
            try:
                _store_event(self.store, self._ids[key], event)
            except StoreError as exc:
                self._fail(event, exc)
        else:
            self._backlog[key].append(event)
        if isinstance(event, RunFinished):
            if key in self._backlog:
                self._keep_elsewhere(key, event)
            self._started.pop(key, None)

    def _fail(self, event: Event, exc: StoreError) -> None:
        started = self._started[event.run_key]
        self._backlog[event.run_key] = [started] if event is started else [started, event]
        self._failure[event.run_key] = (str(exc), getattr(event, "t_s", None))

    def _keep_elsewhere(self, key: str, finished: RunFinished) -> None:
        """Write a run's start and backlog to a results database of their own; mark
        the run's row in the main one (if it has one and takes the write)."""
        events = self._backlog.pop(key)
        error, since_s = self._failure.pop(key)
        started = events[0]
        assert isinstance(started, RunStarted)
        run_id = self._ids.get(key)
        kept_in, kept_whole, kept_error = self._spare_store(key, run_id, events)
        if run_id is not None:
            where = f"the rest is in {kept_in}" if kept_in is not None else "the rest is lost"
            moment = f"after {since_s:.0f} s" if since_s is not None else "before its load began"
            note = f"could not be stored {moment} ({error}); {where}"
            reason = f"{finished.reason}; {note}" if finished.reason else note
            # The summary stays out: it covers seconds this database does not hold.
            with contextlib.suppress(StoreError):
                self.store.finish_run(run_id, replace(finished, status="failed", reason=reason,
                                                      summary=None))
        self.problems.append(RecordingProblem(
            run_key=key, variant=str(getattr(started.plan, "variant", "")), run_id=run_id,
            since_s=since_s, error=error, kept_in=kept_in, kept_whole=kept_whole,
            kept_error=kept_error, summary=finished.summary))

    def _spare_store(self, key: str, run_id: int | None,
                     events: list[Event]) -> tuple[Path | None, bool, str | None]:
        """Write a run as run 1 of a new results database, beside the main one or else in
        the temporary directory: what the main one stored of it (read back, when it can
        be), then ``events`` (a ``RunStarted`` first).

        Returns:
            ``(path, whole, problem)``: where it went (None when nowhere), whether that
            holds the whole run, and why it went nowhere.
        """
        name = f"{self.store.path.stem}.unsaved-{key[:12]}.db"
        problem = "no place to write it"
        for folder in (self.store.path.parent, Path(tempfile.gettempdir())):
            path = folder / name
            try:
                with Store(path) as spare:
                    whole = True
                    try:
                        copy_id = spare.copy_run_from(self.store, run_id) if run_id is not None else None
                    except (StoreError, KeyError):
                        copy_id = None
                    if copy_id is None:
                        started = events[0]
                        assert isinstance(started, RunStarted)
                        copy_id = spare.insert_run(started)
                        whole = run_id is None
                    for event in events[1:]:
                        if isinstance(event, RunFinished) and not whole:
                            # Its summary covers seconds this copy does not hold.
                            note = f"the seconds before the failure are in {self.store.path}"
                            event = replace(event, summary=None, reason=(
                                f"{event.reason}; {note}" if event.reason else note))
                        _store_event(spare, copy_id, event)
                return path, whole, None
            except (StoreError, OSError) as exc:
                problem = str(exc)
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    with contextlib.suppress(OSError):
                        leftover.unlink(missing_ok=True)
        return None, False, problem


# --------------------------------------------------------------------------- helpers


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _summary_row(run_id: int, summary: Summary, target_stats: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "requests": summary.requests,
        "ok": summary.ok,
        "errors": summary.errors,
        "dropped": summary.dropped,
        "interrupted": summary.interrupted,
        "bytes": summary.bytes,
        "window_s": summary.window_s,
        "throughput_rps": summary.throughput_rps,
        "attempts_rps": summary.attempts_rps,
    }
    for attr, prefix in _LATENCY_PREFIXES.items():
        latency: Latency = getattr(summary, attr)
        for name in _LATENCY_FIELDS:
            row[f"{prefix}{name}_ms"] = getattr(latency, name)
        row[_LATENCY_COUNTS[attr]] = latency.count
    row |= {
        "error_rate": summary.error_rate,
        "errors_by_class": _dumps(summary.errors_by_class),
        "target_cpu_s_per_1k": summary.target_cpu_s_per_1k,
        "target_peak_rss_bytes": summary.target_peak_rss_bytes,
        "generator_cpu_s_per_1k": summary.generator_cpu_s_per_1k,
        "generator_peak_cpu_percent": summary.generator_peak_cpu_percent,
        "cache_hit_ratio": summary.cache_hit_ratio,
        "target_stats": _dumps(target_stats or {}),
        "generator_bound": int(summary.generator_bound),
        "generator_bound_reason": summary.generator_bound_reason,
        "loop_lag_p99_ms": summary.loop_lag_p99_ms,
        "offered_rps": summary.offered_rps,
        "achieved_rps": summary.achieved_rps,
        "load_not_achieved": int(summary.load_not_achieved),
        "load_not_achieved_reason": summary.load_not_achieved_reason,
    }
    return row


def _summary_from_row(row: dict[str, Any]) -> Summary:
    latencies = {
        attr: Latency(
            **{name: float(row[f"{prefix}{name}_ms"] or 0.0) for name in _LATENCY_FIELDS},
            count=int(row[_LATENCY_COUNTS[attr]] or 0),
        )
        for attr, prefix in _LATENCY_PREFIXES.items()
    }
    return Summary(
        requests=row["requests"],
        ok=row["ok"],
        errors=row["errors"],
        dropped=row["dropped"],
        interrupted=row["interrupted"],
        bytes=row["bytes"],
        window_s=row["window_s"],
        throughput_rps=row["throughput_rps"],
        attempts_rps=row["attempts_rps"],
        latency_ms=latencies["latency_ms"],
        latency_all_ms=latencies["latency_all_ms"],
        service_ms=latencies["service_ms"],
        error_rate=row["error_rate"],
        errors_by_class=_loads(row["errors_by_class"]),
        target_cpu_s_per_1k=row["target_cpu_s_per_1k"],
        target_peak_rss_bytes=row["target_peak_rss_bytes"],
        generator_cpu_s_per_1k=row["generator_cpu_s_per_1k"],
        generator_peak_cpu_percent=row["generator_peak_cpu_percent"],
        cache_hit_ratio=row["cache_hit_ratio"],
        generator_bound=bool(row.get("generator_bound") or 0),
        generator_bound_reason=row.get("generator_bound_reason"),
        loop_lag_p99_ms=row.get("loop_lag_p99_ms"),
        offered_rps=row.get("offered_rps"),
        achieved_rps=row.get("achieved_rps"),
        load_not_achieved=bool(row.get("load_not_achieved") or 0),
        load_not_achieved_reason=row.get("load_not_achieved_reason"),
    )


def _run_record(row: dict[str, Any], summary_row: dict[str, Any] | None) -> RunRecord:
    started = float(row["started_at_unix"])
    ended = row["ended_at_unix"]
    return RunRecord(
        id=row["id"],
        experiment=row["experiment"],
        variant=row["variant"],
        status=row["status"],
        reason=row["reason"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=(float(ended) - started) if ended is not None else None,
        config=_loads(row["config"]),
        lab_version=row["lab_version"] or "",
        host={
            "cores": row["host_cores"],
            "memory_bytes": row["host_memory_bytes"],
            "python": row["host_python"],
            "platform": row["host_platform"],
        },
        target_url=row["target_url"],
        summary=_summary_from_row(summary_row) if summary_row else None,
        target_stats=_loads(summary_row["target_stats"]) if summary_row else {},
        title=row["title"] or "",
        sweep_id=row.get("sweep_id"),
        sweep_level=row.get("sweep_level"),
        run_key=row["run_key"] or "",
        started_at_unix=started,
        ended_at_unix=float(ended) if ended is not None else None,
    )
