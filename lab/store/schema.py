"""The schema of ``results.db``: numbered migration steps, each applied once and recorded in
``PRAGMA user_version``. To change the schema, append a step; never edit an applied one.
The table and column names are a contract: extra columns may be added, none renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from lab.store.rows import _LATENCY_COUNTS, _LATENCY_FIELDS, _LATENCY_PREFIXES


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


def _m008_replicas(db: Database) -> None:
    """Replicas behind a balancer: each replica of a run, its traffic per interval (from
    the balancer's log), the replica count per interval, every autoscaler decision, and
    the replica a resource reading belongs to."""
    fk_run = [("run_id", "runs", "id")]
    db.table("resources").add_column("replica", int)
    db["replicas"].create(
        {"run_id": int, "replica": int, "pid": int, "address": str, "state": str,
         "started_s": float, "ready_s": float, "ended_s": float},
        foreign_keys=fk_run, not_null=["run_id", "replica"],
    )
    db["replicas"].create_index(["run_id"])
    db["replica_intervals"].create(
        {"run_id": int, "t_s": float, "duration_s": float, "replica": int, "requests": int,
         "errors": int, "histogram": bytes},
        foreign_keys=fk_run, not_null=["run_id", "t_s", "replica"],
    )
    db["replica_intervals"].create_index(["run_id"])
    db["replica_counts"].create(
        {"run_id": int, "t_s": float, "desired": int, "ready": int, "starting": int,
         "draining": int},
        foreign_keys=fk_run, not_null=["run_id", "t_s"],
    )
    db["replica_counts"].create_index(["run_id"])
    db["autoscale_events"].create(
        {"run_id": int, "t_s": float, "current": int, "metric": str, "metric_value": float,
         "ratio": float, "recommended": int, "desired": int, "applied": int, "reason": str,
         "inputs": str},
        foreign_keys=fk_run, not_null=["run_id", "t_s"],
    )
    db["autoscale_events"].create_index(["run_id"])


def _m009_faults(db: Database) -> None:
    """The faults of a run (``[[faults]]``): when each came due and what it did."""
    db["faults"].create(
        {"run_id": int, "t_s": float, "action": str, "replica": int, "applied": int, "note": str},
        foreign_keys=[("run_id", "runs", "id")], not_null=["run_id", "t_s", "action"],
    )
    db["faults"].create_index(["run_id"])


def _m010_generators(db: Database) -> None:
    """Where each generator worker of a run ran: its host, pid, Dask worker address (a
    cluster run) and that machine's clock offset from the Dask scheduler."""
    db["generators"].create(
        {"run_id": int, "worker": int, "host": str, "pid": int, "address": str,
         "clock_offset_ms": float},
        foreign_keys=[("run_id", "runs", "id")], not_null=["run_id", "worker"],
    )
    db["generators"].create_index(["run_id"])
    db["intervals"].add_column("generator_cpu_by_worker", str)


MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _m001_initial,
    _m002_lab_process,
    _m003_generator_health,
    _m004_services_and_target_series,
    _m005_sweeps,
    _m006_lab_process_start,
    _m007_offered_load,
    _m008_replicas,
    _m009_faults,
    _m010_generators,
)
"""Schema steps in order; step ``n`` (1-based) brings ``PRAGMA user_version`` to ``n``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code writes."""

CHILD_TABLES = ("intervals", "resources", "errors", "run_events", "summaries", "target_samples",
                "replicas", "replica_intervals", "replica_counts", "autoscale_events", "faults",
                "generators")
"""Tables whose rows belong to one run (``run_id``); ``sweeps`` and ``fits`` belong to a
sweep: deleting one of its runs removes the sweep's fits (see ``Store.delete_run``)."""


