"""The results database: ``Store`` (opened, created or migrated on construction), its
writes of a run as it goes and the queries of the reports, and ``open_store``, the way
every command opens it (each problem a one-line ``StoreError``).

Concurrency: the database runs in WAL mode with a 10 s busy timeout and every write is
its own short ``BEGIN IMMEDIATE`` transaction, so two processes (or two ``Store``
objects) may record runs into one file at once. A ``Store`` may be shared between
threads; its calls are serialised by a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database
from sqlite_utils.db import Table

from lab.errors import StoreError, UnknownRunError
from lab.events import (
    ErrorSample,
    FaultApplied,
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
    ServicesReady,
    TargetReady,
    TargetSample,
)
from lab.figures import CpuReading, IntervalCounts, Summary
from lab.procs import owner_alive, this_lab
from lab.store.records import (
    BUSY_TIMEOUT_MS,
    RUN_STATUSES,
    AutoscaleEventRow,
    ErrorRow,
    FaultRow,
    IntervalRow,
    ReplicaCountRow,
    ReplicaIntervalRow,
    ReplicaRow,
    ResourceRow,
    RunConfig,
    RunEventRow,
    RunRecord,
    SweepRecord,
    iso_utc,
    unsaved_run_paths,
)
from lab.store.rows import dumps, loads, run_record, summary_row
from lab.store.schema import CHILD_TABLES, MIGRATIONS, SCHEMA_VERSION

SummariseAbandoned = Callable[["Store", int, RunConfig], tuple[str, Summary | None]]
"""``(store, run_id, the run's config) → (what its reason says of the figures, its summary
or None)``, for a run whose lab process was killed mid-run."""

_BUG_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.NotSupportedError)
"""SQLite errors that mean a bug in the lab, not a problem of the file: left as they are."""


DAMAGED_HINT = " ('lab doctor --db {path}' checks it; sqlite3's .recover command saves what is left)"


class DatabaseGoneError(StoreError):
    """The results database file was deleted, or another file put in its place, while a
    ``Store`` had it open: SQLite would go on writing to the unlinked file, where nothing
    can ever read it, so the ``Store`` writes nothing more."""


def _sqlite_problem(path: Path, doing: str, exc: sqlite3.Error) -> str:
    """One line for a SQLite failure: the file, what could not be done, SQLite's reason,
    and what the user can do about it."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    lowered = reason.lower()
    if "malformed" in lowered or "corrupt" in lowered:
        hint = "; the file is damaged" + DAMAGED_HINT.format(path=path)
    elif "not a database" in lowered:
        hint = "; it is not a SQLite file (pass --db with a results database, or a path to create one)"
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
def translated(path: Path, doing: str) -> Iterator[None]:
    """Turn SQLite's failures on ``path`` into ``StoreError`` (one line)."""
    try:
        yield
    except sqlite3.Error as exc:
        if isinstance(exc, _BUG_ERRORS):
            raise
        raise StoreError(_sqlite_problem(path, doing, exc)) from exc


def open_store(db_path: str | Path, *, readonly: bool = False, check: bool = False,
               summarise_abandoned: SummariseAbandoned | None = None) -> Store:
    """Open a results database the way every command does: each problem is a
    ``StoreError`` whose message is the one line to show.

    Args:
        db_path: the file (``--db`` / ``LAB_DB``).
        readonly: read only; the file must exist, nothing is created or changed.
        check: also read the whole file (``Store.check``), as before a run: damage
            anywhere in it is refused here rather than met in the middle of a run.
        summarise_abandoned: see ``Store``.

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
    leftovers = _absent_companions(path)
    try:
        if check and path.is_file() and path.stat().st_size > 0:
            # Read-only first: a writable connection on a damaged file in WAL mode would
            # leave its -wal and -shm beside it, and nothing may be written to it.
            check_readonly(path)
        return Store(path, readonly=readonly, summarise_abandoned=summarise_abandoned)
    except OSError as exc:
        _remove_empty(leftovers)
        raise StoreError(f"{text}: cannot open results database: {exc.strerror or exc}") from exc
    except StoreError:
        _remove_empty(leftovers)
        raise


def check_readonly(db_path: str | Path) -> None:
    """Check an existing results database without writing anything: that it is one, of a
    schema this lab reads, and sound in every page (``Store.check``). A damaged file is
    left as it was, with no -wal or -shm file made beside it.

    Raises:
        StoreError: the file is missing, not a results database, written by a newer lab,
            damaged, or cannot be read.
    """
    path = Path(db_path)
    leftovers = _absent_companions(path)
    try:
        with translated(path, "open"):
            conn = _connect_readonly(path)
            try:
                rows = conn.execute("PRAGMA quick_check(10)").fetchall()
            finally:
                conn.close()
        problems = _problems(rows)
        if problems:
            raise StoreError(f"{db_path}: the results database is damaged: {problems[0]}"
                             f"{DAMAGED_HINT.format(path=db_path)}")
    except StoreError:
        _remove_empty(leftovers)
        raise


def _problems(rows: list[Any]) -> list[str]:
    """The problems in the rows of ``PRAGMA quick_check``, one line each; empty when sound."""
    # SQLite may put several lines in one row ("*** in database main ***\nPage 6: ...").
    problems = [" ".join(str(row[0]).split()) for row in rows]
    return [] if problems == ["ok"] else problems


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` (SQLite's errors as they are)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        # A WAL database in a directory we cannot write (no -shm file can be made):
        # read it as an immutable snapshot.
        conn.close()
        conn = sqlite3.connect(uri.replace("mode=ro", "immutable=1"), uri=True,
                               check_same_thread=False)
    except BaseException:
        conn.close()
        raise
    return conn


def _absent_companions(path: Path) -> list[Path]:
    """The -wal and -shm files SQLite may make beside ``path`` that are not there now."""
    return [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if not p.exists()]


def _remove_empty(made: list[Path]) -> None:
    """Remove the -wal and -shm files a connection that failed made beside a damaged file.
    A read-only or failed connection writes no page to its -wal (one that holds pages is
    left alone); the -shm is only the -wal's index."""
    wal = [p for p in made if p.name.endswith("-wal")]
    if any(p.exists() and p.stat().st_size > 0 for p in wal):
        return
    for p in made:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass  # nothing was made there (its folder is a file, or cannot be written)


class Store:
    """The results database: opened (and created or migrated) on construction.

    Args:
        path: the SQLite file; created with its parent directories when missing.

    Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | Path, readonly: bool = False, *,
                 summarise_abandoned: SummariseAbandoned | None = None) -> None:
        """Open the results database.

        Args:
            path: the SQLite file; created (with its schema) unless ``readonly``. Its
                directory must exist.
            readonly: open for reading only: nothing is created or changed, so reading a
                results.db on a read-only medium works.
            summarise_abandoned: how the figures of a run whose lab process was killed are
                made from what it stored (``lab.results.open_results`` gives the
                analysis's). Without it such runs are left as they are when writing, and
                shown failed without a summary when reading.

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
        self._summarise_abandoned = summarise_abandoned
        self._lock = threading.RLock()
        self._identity: tuple[int, int] | None = None
        if readonly:
            if not self.path.is_file():
                raise StoreError(f"{path}: no such results database")
            with translated(self.path, "open"):
                conn = _connect_readonly(self.path)
        else:
            if str(path) != ":memory:" and not self.path.parent.is_dir():
                raise StoreError(f"{path}: directory {str(self.path.parent)!r} does not exist")
            with translated(self.path, "open"):
                conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                                       check_same_thread=False)
        self._db = Database(conn, execute_plugins=False)
        try:
            with translated(self.path, "open"):
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                self._check_is_ours()
            if not readonly:
                with translated(self.path, "write"):
                    self._enable_wal()
                    self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
                self._prove_writable()
                if str(path) != ":memory:":
                    self._identity = self._file_identity()
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

    def _file_identity(self) -> tuple[int, int] | None:
        """``(st_dev, st_ino)`` of the file now at ``path``; None when there is none."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def ensure_in_place(self) -> None:
        """Check that the file this store writes to is still the one at its path (one
        ``stat``; a no-op for a read-only or in-memory store).

        Raises:
            DatabaseGoneError: the file was deleted or replaced since the store opened it.
        """
        if self._identity is None:
            return
        now = self._file_identity()
        if now == self._identity:
            return
        what = "deleted" if now is None else "replaced by another file"
        raise DatabaseGoneError(f"{self.path}: the results database was {what} while the lab "
                                "wrote to it")

    def check(self) -> list[str]:
        """SQLite's ``PRAGMA quick_check`` of the whole file: every page and index read.

        Returns:
            The problems found, one line each, at most 10 (empty when the file is sound).

        Raises:
            StoreError: the file is so damaged the check cannot run.
        """
        with self._lock, translated(self.path, "check"):
            rows = self._db.execute("PRAGMA quick_check(10)").fetchall()
        return _problems(rows)

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
        with self._lock, translated(self.path, "read"):
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _enable_wal(self) -> None:
        """Switch a new database to WAL, waiting out another lab doing the same.

        Changing the journal mode needs the whole file to itself, and SQLite answers
        "database is locked" at once, without its busy timeout, while another connection
        (a second ``lab run`` opening the same new file) holds any lock: retried here for
        as long as the busy timeout would have waited.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.005
        while True:
            try:
                self._db.enable_wal()
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    @property
    def journal_mode(self) -> str:
        """SQLite journal mode, ``wal`` once opened."""
        with self._lock, translated(self.path, "read"):
            return str(self._db.journal_mode)

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One short write transaction, taking the write lock up front (waits for it
        up to the busy timeout instead of failing on a lock upgrade).

        Raises:
            StoreError: SQLite could not write (the transaction is rolled back).
        """
        with self._lock, translated(self.path, "write"):
            self.ensure_in_place()
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
                MIGRATIONS[number - 1](db)
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
            "config": dumps(plan.config()),
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
            self._table("sweeps").update(sweep_id, {"report": dumps(report),
                                                    "capacity_rps": capacity_rps})
            self._table("fits").delete_where("sweep_id = ?", [sweep_id])
            for fit in fits:
                self._table("fits").insert({**fit, "sweep_id": sweep_id, "created_at": now})

    def mark_abandoned_runs(self) -> list[int]:
        """Mark as failed the ``running`` runs whose lab process on this host is gone
        (killed with SIGKILL, or the machine lost power), each with the summary of what it
        stored (``summarise_abandoned``).

        Runs of a lab that still runs (same pid and start time), and runs recorded on
        another host, are never touched. Called whenever a store is opened for writing;
        a store given no ``summarise_abandoned`` marks nothing, so a run is never stored
        failed without the figures it measured.

        Returns:
            The ids of the runs marked.
        """
        if self._summarise_abandoned is None:
            return []
        marked = []
        for row in self._query("SELECT * FROM runs WHERE status = 'running'"):
            if not self._owner_gone(row):
                continue
            reason, summary = self._abandoned(row)
            with self._write() as db:
                cur = db.execute("UPDATE runs SET status = 'failed', reason = ? "
                                 "WHERE id = ? AND status = 'running'", [reason, row["id"]])
                if cur.rowcount and summary is not None:
                    self._table("summaries").insert(summary_row(row["id"], summary, {}),
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
        """The reason and summary of a run whose lab process ended without finishing it:
        when this database stopped taking its writes and the lab kept it in a results
        database of its own, where it is (no summary: its figures are there); otherwise
        killed, with the summary from ``summarise_abandoned`` (without one, none)."""
        kept_in = self._kept_elsewhere(str(row.get("run_key") or ""))
        if kept_in is not None:
            shown = kept_in.name if kept_in.parent == self.path.parent else str(kept_in)
            return f"kept in {shown}: {self.path.name} stopped taking writes", None
        reason = f"killed: the lab process (pid {row.get('lab_pid')}) ended without finishing this run"
        if self._summarise_abandoned is None:
            return reason, None
        config = RunConfig.from_dict(loads(row["config"]))
        what, summary = self._summarise_abandoned(self, int(row["id"]), config)
        return f"{reason}; {what}", summary

    def _kept_elsewhere(self, run_key: str) -> Path | None:
        """The ``results.unsaved-KEY.db`` (``unsaved_run_paths``) that holds the run with this
        key, if one does: where the recorder keeps a run this database stopped taking."""
        if not run_key or str(self.path) == ":memory:":
            return None
        for path in unsaved_run_paths(self.path, run_key):
            if not path.is_file() or path.resolve() == self.path.resolve():
                continue
            try:
                with Store(path, readonly=True) as spare:
                    if spare._query("SELECT 1 FROM runs WHERE run_key = ? LIMIT 1", [run_key]):
                        return path
            except StoreError:
                continue
        return None

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
            "errors_by_class": dumps(event.errors_by_class),
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
            "generator_cpu_by_worker": (dumps(list(event.generator_cpu_by_worker))
                                        if event.generator_cpu_by_worker else None),
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
                run_id, {"services": dumps({"running": event.services, "notes": event.notes})})

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
            "detail": dumps(event.detail),
            "replica": event.detail.get("replica") if event.role == "replica" else None,
        }
        with self._write():
            self._table("resources").insert(row)

    def set_replica(self, run_id: int, event: ReplicaChanged) -> None:
        """Keep a replica's latest state (one row per replica of a run)."""
        row = {"run_id": run_id, "replica": event.replica, "pid": event.pid,
               "address": event.address, "state": event.state, "started_s": event.started_s,
               "ready_s": event.ready_s, "ended_s": event.ended_s}
        with self._write() as db:
            db.execute("DELETE FROM replicas WHERE run_id = ? AND replica = ?",
                               [run_id, event.replica])
            self._table("replicas").insert(row)

    def add_replica_traffic(self, run_id: int, event: ReplicaTraffic) -> None:
        """Append what one replica served in one interval."""
        row = {"run_id": run_id, "t_s": event.t_s, "duration_s": event.duration_s,
               "replica": event.replica, "requests": event.requests, "errors": event.errors,
               "histogram": event.histogram}
        with self._write():
            self._table("replica_intervals").insert(row)

    def add_replica_count(self, run_id: int, event: ReplicaCount) -> None:
        """Append the replica count at the end of one interval."""
        row = {"run_id": run_id, "t_s": event.t_s, "desired": event.desired, "ready": event.ready,
               "starting": event.starting, "draining": event.draining}
        with self._write():
            self._table("replica_counts").insert(row)

    def set_generators(self, run_id: int, event: GeneratorsReady) -> None:
        """Remember where a run's generator workers ran: one ``generators`` row each, and
        in the run's config (``generators``: source, cluster, scheduler, workers, hosts)
        and ``load.workers`` the count that actually ran."""
        rows = [{"run_id": run_id, "worker": g.index, "host": g.host, "pid": g.pid,
                 "address": g.address, "clock_offset_ms": g.clock_offset_ms}
                for g in event.generators]
        with self._write():
            runs = self._table("runs")
            config = loads(runs.get(run_id)["config"]) or {}
            config["generators"] = {"source": event.source, "cluster": event.cluster,
                                    "scheduler": event.scheduler, "workers": len(event.generators),
                                    "hosts": list(event.hosts)}
            if isinstance(config.get("load"), dict):
                config["load"]["workers"] = len(event.generators)
            runs.update(run_id, {"config": dumps(config)})
            if rows:
                self._table("generators").insert_all(rows)

    def add_fault(self, run_id: int, event: FaultApplied) -> None:
        """Append a fault that came due."""
        row = {"run_id": run_id, "t_s": event.t_s, "action": event.action, "replica": event.replica,
               "applied": int(event.applied), "note": event.note}
        with self._write():
            self._table("faults").insert(row)

    def add_scale_decision(self, run_id: int, event: ScaleDecision) -> None:
        """Append one autoscaler decision with its inputs."""
        row = {"run_id": run_id, "t_s": event.t_s, "current": event.current, "metric": event.metric,
               "metric_value": event.metric_value, "ratio": event.ratio,
               "recommended": event.recommended, "desired": event.desired,
               "applied": int(event.applied), "reason": event.reason, "inputs": dumps(event.inputs)}
        with self._write():
            self._table("autoscale_events").insert(row)

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
                row = summary_row(run_id, event.summary, event.target_stats)
                self._table("summaries").insert(row, replace=True)

    def copy_run_from(self, source: Store, run_id: int) -> int:
        """Copy one run, its row and every row that belongs to it, from another results
        database into this one (not its sweep: the copy is a plain run).

        Returns:
            The copy's id here.

        Raises:
            UnknownRunError: ``source`` has no run with this id.
            StoreError: ``source`` cannot be read or this database cannot be written.
        """
        found = source._query("SELECT * FROM runs WHERE id = ?", [run_id])
        if not found:
            raise UnknownRunError(f"no run with id {run_id}")
        row = {k: v for k, v in found[0].items() if k not in ("id", "sweep_id", "sweep_level")}
        children = {table: source._query(f"SELECT * FROM {table} WHERE run_id = ?", [run_id])
                    for table in CHILD_TABLES}
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
            UnknownRunError: no run has this id.
        """
        with self._write() as db:
            found = db.execute("SELECT sweep_id FROM runs WHERE id = ?", [run_id]).fetchone()
            if found is None:
                raise UnknownRunError(f"no run with id {run_id}")
            for table in CHILD_TABLES:
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
        with self._lock, translated(self.path, "read"):
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
                record = run_record({**row, "status": "failed", "reason": reason}, None)
                records.append(replace(record, summary=summary))
            else:
                records.append(run_record(row, summaries.get(row["id"])))
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
            UnknownRunError: ``no run with id N`` (a KeyError too).
        """
        return self.get_runs([run_id])[0]

    def get_runs(self, ids: Sequence[int]) -> list[RunRecord]:
        """Runs by id, in the order given.

        Raises:
            UnknownRunError: naming the first id that has no run.
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
                raise UnknownRunError(f"no run with id {run_id}")
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
                errors_by_class=loads(r["errors_by_class"]),
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
                generator_cpu_by_worker=_by_worker(r.get("generator_cpu_by_worker")),
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
            UnknownRunError: ``no sweep with id N``.
        """
        rows = self._query("SELECT * FROM sweeps WHERE id = ?", [sweep_id])
        if not rows:
            raise UnknownRunError(f"no sweep with id {sweep_id}")
        row = rows[0]
        run_rows = self._query("SELECT * FROM runs WHERE sweep_id = ? ORDER BY started_at_unix, id",
                               [sweep_id])
        fits = self._query("SELECT * FROM fits WHERE sweep_id = ? ORDER BY id", [sweep_id])
        return SweepRecord(
            id=row["id"], experiment=row["experiment"], variant=row["variant"],
            parameter=row["parameter"], levels=json.loads(row["levels"] or "[]"),
            slo_p99_ms=row["slo_p99_ms"], created_at=row["created_at"],
            capacity_rps=row["capacity_rps"], report=loads(row["report"]),
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

    def replicas(self, run_id: int) -> list[ReplicaRow]:
        """A run's replicas by index (none for a run without a balancer)."""
        rows = self._query("SELECT * FROM replicas WHERE run_id = ? ORDER BY replica", [run_id])
        return [ReplicaRow(run_id=r["run_id"], replica=r["replica"], pid=r["pid"],
                           address=r["address"] or "", state=r["state"] or "",
                           started_s=r["started_s"] or 0.0, ready_s=r["ready_s"], ended_s=r["ended_s"])
                for r in rows]

    def replica_intervals(self, run_id: int) -> list[ReplicaIntervalRow]:
        """What each replica served per interval, in time then replica order."""
        rows = self._query("SELECT * FROM replica_intervals WHERE run_id = ? "
                           "ORDER BY t_s, replica, rowid", [run_id])
        return [ReplicaIntervalRow(run_id=r["run_id"], t_s=r["t_s"], duration_s=r["duration_s"],
                                   replica=r["replica"], requests=r["requests"] or 0,
                                   errors=r["errors"] or 0, histogram=r["histogram"] or b"")
                for r in rows]

    def replica_counts(self, run_id: int) -> list[ReplicaCountRow]:
        """The replica count per interval, in time order."""
        rows = self._query("SELECT * FROM replica_counts WHERE run_id = ? ORDER BY t_s, rowid",
                           [run_id])
        return [ReplicaCountRow(run_id=r["run_id"], t_s=r["t_s"], desired=r["desired"] or 0,
                                ready=r["ready"] or 0, starting=r["starting"] or 0,
                                draining=r["draining"] or 0) for r in rows]

    def faults(self, run_id: int) -> list[FaultRow]:
        """The faults of a run that came due, in time order."""
        rows = self._query("SELECT * FROM faults WHERE run_id = ? ORDER BY t_s, rowid", [run_id])
        return [FaultRow(run_id=r["run_id"], t_s=r["t_s"], action=r["action"], replica=r["replica"],
                         applied=bool(r["applied"]), note=r["note"] or "") for r in rows]

    def autoscale_events(self, run_id: int) -> list[AutoscaleEventRow]:
        """Every autoscaler decision of a run, in time order."""
        rows = self._query("SELECT * FROM autoscale_events WHERE run_id = ? ORDER BY t_s, rowid",
                           [run_id])
        return [AutoscaleEventRow(run_id=r["run_id"], t_s=r["t_s"], current=r["current"] or 0,
                                  metric=r["metric"] or "", metric_value=r["metric_value"],
                                  ratio=r["ratio"], recommended=r["recommended"] or 0,
                                  desired=r["desired"] or 0, applied=bool(r["applied"]),
                                  reason=r["reason"] or "", inputs=loads(r["inputs"]) or {})
                for r in rows]

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
                generator_cpu_by_worker=iv.generator_cpu_by_worker,
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
                detail=loads(r["detail"]),
                replica=r.get("replica"),
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


def _by_worker(text: str | None) -> tuple[float | None, ...]:
    """A stored ``generator_cpu_by_worker`` JSON list as a tuple (empty when absent)."""
    values = loads(text) if text else None
    if not isinstance(values, list):
        return ()
    return tuple(float(v) if isinstance(v, int | float) else None for v in values)
