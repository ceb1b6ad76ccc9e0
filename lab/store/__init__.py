"""``results.db``: the schema, the writes of a run and the queries of the reports.

This is the only package that speaks SQL (through sqlite-utils); everything else gets
frozen dataclasses back. The table and column names below are a contract: people query
``results.db`` with other tools. Extra columns may be added, none renamed.

* ``runs``: one row per run (status ``running`` / ``completed`` / ``failed`` /
  ``aborted``), with its resolved configuration as JSON and the host's facts, and the
  lab process that records it (``lab_pid``, ``lab_started_at_unix``, ``lab_host``): a
  ``running`` run whose lab process is gone was killed, and is marked ``failed`` (or,
  when a ``results.unsaved-KEY.db`` beside it holds the run, failed as kept there).
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

Schema changes are numbered migration steps (``schema.MIGRATIONS``), each applied once
and recorded in ``PRAGMA user_version``. To change the schema, append a step; never edit
an applied one.

The package, by concern: ``records`` (the dataclasses callers get), ``schema`` (the
migrations), ``rows`` (rows ↔ records), ``database`` (``Store``: the writes and queries,
``open_store``) and ``recorder`` (``StoreRecorder``, the engine listener that writes a
run's events as they arrive).
"""

from lab.errors import StoreError, UnknownRunError
from lab.run_config import LoadSettings, RunConfig
from lab.store.database import DatabaseGoneError, Store, open_store
from lab.store.recorder import RecordingProblem, StoreRecorder
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
    RunEventRow,
    RunRecord,
    SweepRecord,
    default_db_path,
    iso_utc,
    unsaved_beside,
)
from lab.store.schema import SCHEMA_VERSION

__all__ = [
    "FaultRow",
    "AutoscaleEventRow",
    "ReplicaCountRow",
    "ReplicaIntervalRow",
    "ReplicaRow",
    "BUSY_TIMEOUT_MS",
    "DatabaseGoneError",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "ErrorRow",
    "IntervalRow",
    "LoadSettings",
    "RecordingProblem",
    "ResourceRow",
    "RunConfig",
    "RunEventRow",
    "RunRecord",
    "Store",
    "StoreError",
    "StoreRecorder",
    "SweepRecord",
    "UnknownRunError",
    "default_db_path",
    "iso_utc",
    "open_store",
    "unsaved_beside",
]

