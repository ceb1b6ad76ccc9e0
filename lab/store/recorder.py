"""The engine listener that writes a run's events to a ``Store`` as they arrive, and what it
reports when the database stops taking them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

from lab.errors import StoreError, UnknownRunError
from lab.events import (
    ErrorSample,
    Event,
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
from lab.figures import Summary
from lab.store.database import DatabaseGoneError, Store
from lab.store.records import unsaved_run_paths


@dataclass(frozen=True)
class RecordingProblem:
    """A run whose events could not all be written to its results database."""

    run_key: str
    """The engine's key of the run."""
    variant: str
    """The run's variant (with its sweep level for a run of a sweep: ``default vus=8``)."""
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
    db_gone: bool = False
    """Whether the database file was deleted or replaced during the run (nothing of the
    run is left where the user will look for it)."""

    def describe(self) -> str:
        """The one line a user reads: what failed, what is stored where."""
        which = (f"run {self.run_id} ({self.variant})" if self.run_id is not None
                 else f"the {self.variant} run")
        if self.db_gone:
            which, stored = f"the {self.variant} run", ""
        elif self.run_id is None:
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
        return f"lab: {self.error}; {which}: " + (f"{stored}; {kept}" if stored else kept)


def _run_name(plan: object) -> str:
    """The variant of a ``RunStarted`` plan, with its sweep level (``RunPlan.run_name``)."""
    return str(getattr(plan, "run_name", getattr(plan, "variant", "")))


def store_event(store: Store, run_id: int, event: Event) -> None:
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
    elif isinstance(event, GeneratorsReady):
        store.set_generators(run_id, event)
    elif isinstance(event, ReplicaChanged):
        store.set_replica(run_id, event)
    elif isinstance(event, ReplicaTraffic):
        store.add_replica_traffic(run_id, event)
    elif isinstance(event, ReplicaCount):
        store.add_replica_count(run_id, event)
    elif isinstance(event, ScaleDecision):
        store.add_scale_decision(run_id, event)
    elif isinstance(event, FaultApplied):
        store.add_fault(run_id, event)
    elif isinstance(event, RunFinished):
        store.finish_run(run_id, event)


class StoreRecorder:
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
        self._failure: dict[str, tuple[StoreError, float | None]] = {}
        self._variants: dict[str, str] = {}

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
            self._variants[key] = _run_name(event.plan)
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
                store_event(self.store, self._ids[key], event)
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
        self._failure[event.run_key] = (exc, getattr(event, "t_s", None))
        if isinstance(exc, DatabaseGoneError):
            self._keep_finished_elsewhere(exc)

    def keep_if_gone(self) -> None:
        """After the last run: when the database file was deleted or replaced since, keep
        each finished run this recorder stored in it in a results database of its own
        (``problems`` then lists them), read back through the connection still open on
        the deleted file. One ``stat`` when the file is in place."""
        try:
            self.store.ensure_in_place()
        except DatabaseGoneError as exc:
            self._keep_finished_elsewhere(exc)

    def _keep_finished_elsewhere(self, exc: DatabaseGoneError) -> None:
        """Keep every finished run stored in a database file that is gone, each in its own
        ``results.unsaved-KEY.db``; a run still going on is kept when it finishes."""
        kept = {p.run_key for p in self.problems}
        for key, run_id in list(self._ids.items()):
            if key in self._started or key in kept:
                continue
            kept_in, kept_whole, kept_error = self._spare_store(key, run_id, [])
            self.problems.append(RecordingProblem(
                run_key=key, variant=self._variants.get(key, ""), run_id=run_id, since_s=None,
                error=str(exc), kept_in=kept_in, kept_whole=kept_whole, kept_error=kept_error,
                db_gone=True))

    def _keep_elsewhere(self, key: str, finished: RunFinished) -> None:
        """Write a run's start and backlog to a results database of their own; mark
        the run's row in the main one (if it has one and takes the write)."""
        events = self._backlog.pop(key)
        exc, since_s = self._failure.pop(key)
        error = str(exc)
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
            run_key=key, variant=_run_name(started.plan), run_id=run_id,
            since_s=since_s, error=error, kept_in=kept_in, kept_whole=kept_whole,
            kept_error=kept_error, summary=finished.summary,
            db_gone=isinstance(exc, DatabaseGoneError)))

    def _spare_store(self, key: str, run_id: int | None,
                     events: list[Event]) -> tuple[Path | None, bool, str | None]:
        """Write a run as run 1 of a new results database, beside the main one or else in
        the temporary directory: what the main one stored of it (read back, when it can
        be), then ``events`` (a ``RunStarted`` first).

        Returns:
            ``(path, whole, problem)``: where it went (None when nowhere), whether that
            holds the whole run, and why it went nowhere. With no ``events``, the run is
            only copied (a finished run).
        """
        problem = "no place to write it"
        for path in unsaved_run_paths(self.store.path, key):
            try:
                with Store(path) as spare:
                    whole = True
                    try:
                        copy_id = spare.copy_run_from(self.store, run_id) if run_id is not None else None
                    except (StoreError, UnknownRunError):
                        copy_id = None
                    if copy_id is None and not events:
                        raise StoreError(f"{self.store.path}: the run could not be read back")
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
                        store_event(spare, copy_id, event)
                return path, whole, None
            except (StoreError, OSError) as exc:
                problem = str(exc)
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    with contextlib.suppress(OSError):
                        leftover.unlink(missing_ok=True)
        return None, False, problem


