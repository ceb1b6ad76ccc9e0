"""Store and StoreRecorder against real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.analysis.summary import summarise
from lab.events import (
    ErrorSample,
    Event,
    HostFacts,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    TargetReady,
)
from lab.figures import CpuReading, IntervalCounts, Summary
from lab.load.histogram import LatencyHistogram
from lab.store import (
    SCHEMA_VERSION,
    RunRecord,
    Store,
    StoreRecorder,
    default_db_path,
    iso_utc,
)

HOST = HostFacts(cores=8, memory_bytes=16 * 2**30, python="3.11.9", platform="Linux-test")
T0 = 1_800_000_000.25


@dataclass(frozen=True)
class FakePlan:
    """Duck-typed stand-in for lab.plan.RunPlan."""

    experiment: str = "caching"
    variant: str = "no-cache"
    title: str = "Does a cache help?"
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "variant": self.variant, "load": {"vus": 4}}


def _interval(key: str, t_s: float, ok: int, errors: int = 0, base_ms: float = 5.0) -> IntervalStats:
    ok_h, all_h, svc_h = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(ok):
        seconds = (base_ms + i % 10) / 1000
        ok_h.record_s(seconds)
        all_h.record_s(seconds)
        svc_h.record_s(seconds * 0.9)
    for _ in range(errors):
        all_h.record_s(0.05)
    return IntervalStats(
        run_key=key,
        t_s=t_s,
        duration_s=1.0,
        requests=ok + errors,
        ok=ok,
        errors=errors,
        errors_by_class={"http_5xx": errors} if errors else {},
        bytes=ok * 100,
        dropped=1 if t_s == 2 else 0,
        interrupted=0,
        active_vus=4,
        target_rate=0.0,
        histogram=ok_h.encode(),
        histogram_all=all_h.encode(),
        histogram_service=svc_h.encode(),
        p50_ms=ok_h.percentile_ms(50) if ok else None,
        p90_ms=ok_h.percentile_ms(90) if ok else None,
        p95_ms=ok_h.percentile_ms(95) if ok else None,
        p99_ms=ok_h.percentile_ms(99) if ok else None,
        max_ms=ok_h.max_ms() if ok else None,
        stage=0,
    )


def _resource(key: str, t_s: float, role: str, cpu_s: float, pid: int | None = 100) -> ResourceSample:
    return ResourceSample(
        run_key=key,
        t_s=t_s,
        role=role,  # type: ignore[arg-type]
        pid=pid,
        cpu_percent=None if t_s == 0 else 50.0 + t_s,
        cpu_seconds=cpu_s,
        rss_bytes=50_000_000 + int(t_s) * 1_000_000,
        num_threads=4,
        num_fds=12,
        processes=2 if role == "target" else 1,
        detail={"per_core": [10.0, 20.0]} if role == "system" else {},
    )


def run_events(
    plan: FakePlan | None = None,
    seconds: int = 4,
    status: str = "completed",
    reason: str | None = None,
    with_summary: bool = True,
) -> tuple[str, list[Event], Summary | None]:
    """A synthetic event sequence of one run, and the summary it finishes with."""
    plan = plan or FakePlan()
    key = uuid.uuid4().hex
    events: list[Event] = [
        RunStarted(run_key=key, plan=plan, started_at=T0, host=HOST, lab_version="0.1.0"),  # type: ignore[arg-type]
        TargetReady(run_key=key, url="http://127.0.0.1:41234", pid=100, startup_s=0.42),
        LoadChanged(run_key=key, t_s=0.0, stage=0, level=4.0, reason="stage"),
    ]
    intervals = [_interval(key, float(t), ok=100 + 10 * t, errors=t % 2) for t in range(seconds)]
    resources = [
        _resource(key, float(t), role, cpu_s=0.2 * t)
        for t in range(seconds + 1)
        for role in ("target", "generator", "system")
    ]
    for t in range(seconds):
        events.append(intervals[t])
        events += [r for r in resources if r.t_s == t]
    events += [r for r in resources if r.t_s == seconds]
    events.append(ErrorSample(run_key=key, error_class="http_5xx", status=503, message="busy", count=2))
    summary = None
    if with_summary:
        summary = summarise(
            [
                IntervalCounts(
                    t_s=i.t_s,
                    duration_s=i.duration_s,
                    ok=i.ok,
                    errors=i.errors,
                    dropped=i.dropped,
                    interrupted=i.interrupted,
                    bytes=i.bytes,
                    errors_by_class=i.errors_by_class,
                    histogram=i.histogram,
                    histogram_all=i.histogram_all,
                    histogram_service=i.histogram_service,
                )
                for i in intervals
            ],
            [CpuReading(r.t_s, r.role, r.pid, r.cpu_percent, r.cpu_seconds, r.rss_bytes) for r in resources],
            warmup_s=1.0,
            cache_stats={"cache_hits": 30, "cache_misses": 10},
        )
    events.append(
        RunFinished(
            run_key=key,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            ended_at=T0 + seconds + 0.5,
            summary=summary,
            target_stats={"cache_hits": 30, "cache_misses": 10},
        )
    )
    return key, events, summary


def record(store: Store, events: list[Event]) -> StoreRecorder:
    recorder = StoreRecorder(store)
    for event in events:
        recorder(event)
    return recorder


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


def test_round_trip_of_a_completed_run(db_path: Path) -> None:
    key, events, summary = run_events()
    with Store(db_path) as store:
        recorder = record(store, events)
        run_id = recorder.run_id_for(key)
        assert recorder.last_run_id == run_id
        run = store.get_run(run_id)

    assert isinstance(run, RunRecord)
    assert (run.experiment, run.variant, run.status, run.reason) == (
        "caching",
        "no-cache",
        "completed",
        None,
    )
    assert run.title == "Does a cache help?"
    assert run.started_at == iso_utc(T0) == "2027-01-15T08:00:00.250Z"
    assert run.ended_at == "2027-01-15T08:00:04.750Z"
    assert run.duration_s == pytest.approx(4.5)
    assert run.config == FakePlan().config()
    assert run.host == {
        "cores": 8,
        "memory_bytes": 16 * 2**30,
        "python": "3.11.9",
        "platform": "Linux-test",
    }
    assert run.lab_version == "0.1.0"
    assert run.target_url == "http://127.0.0.1:41234"
    assert run.target_stats == {"cache_hits": 30, "cache_misses": 10}
    assert summary is not None and summary.cache_hit_ratio == pytest.approx(0.75)
    assert run.summary == summary


def test_summary_can_be_recomputed_from_the_db(db_path: Path) -> None:
    key, events, summary = run_events()
    with Store(db_path) as store:
        run_id = record(store, events).run_id_for(key)
        again = summarise(
            store.interval_counts(run_id),
            store.cpu_readings(run_id),
            warmup_s=1.0,
            cache_stats={"cache_hits": 30, "cache_misses": 10},
        )
    assert again == summary


def test_child_rows_read_back(db_path: Path) -> None:
    key, events, _ = run_events(seconds=3)
    sent = [e for e in events if isinstance(e, IntervalStats)]
    with Store(db_path) as store:
        run_id = record(store, events).run_id_for(key)
        intervals = store.intervals(run_id)
        resources = store.resources(run_id)
        targets = store.resources(run_id, role="target")
        errors = store.errors(run_id)
        load_events = store.run_events(run_id)

    assert [iv.t_s for iv in intervals] == [0.0, 1.0, 2.0]
    for row, event in zip(intervals, sent, strict=True):
        assert row.run_id == run_id
        assert (row.requests, row.ok, row.errors, row.bytes, row.dropped) == (
            event.requests,
            event.ok,
            event.errors,
            event.bytes,
            event.dropped,
        )
        assert row.errors_by_class == event.errors_by_class
        assert row.histogram == event.histogram
        assert row.histogram_all == event.histogram_all
        assert row.histogram_service == event.histogram_service
        assert LatencyHistogram.decode(row.histogram).count == event.ok
        assert (row.p50_ms, row.p99_ms, row.max_ms) == (event.p50_ms, event.p99_ms, event.max_ms)
        assert (row.active_vus, row.target_rate, row.stage) == (4, 0.0, 0)

    assert len(resources) == 4 * 3
    assert {r.role for r in resources} == {"target", "generator", "system"}
    assert [r.t_s for r in targets] == [0.0, 1.0, 2.0, 3.0]
    assert targets[0].cpu_percent is None and targets[1].cpu_percent == 51.0
    assert targets[0].processes == 2
    system = store_free_system(resources)
    assert system.detail == {"per_core": [10.0, 20.0]}

    assert [(e.error_class, e.status, e.message, e.count) for e in errors] == [("http_5xx", 503, "busy", 2)]
    assert [(e.kind, e.stage, e.level, e.reason) for e in load_events] == [("load_changed", 0, 4.0, "stage")]


def store_free_system(resources: list[Any]) -> Any:
    return next(r for r in resources if r.role == "system")


def test_failed_run_keeps_its_intervals(db_path: Path) -> None:
    key, events, _ = run_events(
        seconds=3, status="failed", reason="target exited with code 1", with_summary=False
    )
    with Store(db_path) as store:
        run_id = record(store, events).run_id_for(key)
        run = store.get_run(run_id)
        assert len(store.intervals(run_id)) == 3
    assert run.status == "failed"
    assert run.reason == "target exited with code 1"
    assert run.summary is None
    assert run.target_stats == {}


def test_a_run_interrupted_before_finishing_stays_running(db_path: Path) -> None:
    key, events, _ = run_events(seconds=2)
    with Store(db_path) as store:
        run_id = record(store, events[:-1]).run_id_for(key)
    with Store(db_path) as store:  # reopen, as after a crash
        run = store.get_run(run_id)
        assert run.status == "running"
        assert run.ended_at is None and run.duration_s is None
        assert len(store.intervals(run_id)) == 2


def test_events_for_unknown_runs_are_ignored(db_path: Path) -> None:
    _, events, _ = run_events(seconds=2)
    with Store(db_path) as store:
        recorder = record(store, events[1:])  # no RunStarted
        assert recorder.last_run_id is None
        with pytest.raises(KeyError):
            recorder.run_id_for("nope")
        assert store.list_runs() == []


def test_wal_mode_busy_timeout_and_schema_version(db_path: Path) -> None:
    with Store(db_path) as store:
        assert store.journal_mode == "wal"
        assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in conn.execute("SELECT tbl_name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()
    assert {"runs", "intervals", "resources", "errors", "summaries", "run_events"} <= tables
    assert {"intervals", "resources", "errors"} <= indexes
    with Store(db_path) as store:  # reopening applies no step twice
        assert store.schema_version == SCHEMA_VERSION


def test_two_stores_write_interleaved(db_path: Path) -> None:
    key_a, events_a, _ = run_events(FakePlan(variant="a"))
    key_b, events_b, _ = run_events(FakePlan(variant="b"))
    store_a, store_b = Store(db_path), Store(db_path)
    try:
        rec_a, rec_b = StoreRecorder(store_a), StoreRecorder(store_b)
        for ev_a, ev_b in zip(events_a, events_b, strict=True):
            rec_a(ev_a)
            rec_b(ev_b)
        id_a, id_b = rec_a.run_id_for(key_a), rec_b.run_id_for(key_b)
        assert id_a != id_b
        # each sees the other's rows
        assert store_a.get_run(id_b).status == "completed"
        assert len(store_b.intervals(id_a)) == 4
    finally:
        store_a.close()
        store_b.close()


def test_two_stores_write_concurrently_from_threads(db_path: Path) -> None:
    Store(db_path).close()  # create the schema once
    failures: list[BaseException] = []

    def worker(variant: str) -> None:
        try:
            with Store(db_path) as store:
                recorder = StoreRecorder(store)
                for _ in range(3):
                    for event in run_events(FakePlan(variant=variant), seconds=10)[1]:
                        recorder(event)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(f"v{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with Store(db_path) as store:
        runs = store.list_runs()
        assert len(runs) == 12
        assert all(len(store.intervals(r.id)) == 10 for r in runs)


def test_list_get_and_delete(db_path: Path) -> None:
    with Store(db_path) as store:
        ids = []
        for i, experiment in enumerate(["caching", "workers", "caching"]):
            key, events, _ = run_events(FakePlan(experiment=experiment, variant=f"v{i}"))
            ids.append(record(store, events).run_id_for(key))
        assert [r.id for r in store.list_runs()] == list(reversed(ids))
        assert [r.id for r in store.list_runs("caching")] == [ids[2], ids[0]]
        assert [r.id for r in store.list_runs(limit=1)] == [ids[2]]
        assert [r.id for r in store.get_runs([ids[1], ids[0]])] == [ids[1], ids[0]]
        assert store.experiments() == ["caching", "workers"]
        with pytest.raises(KeyError, match="no run with id 999"):
            store.get_runs([ids[0], 999, 998])
        with pytest.raises(KeyError, match="no run with id 999"):
            store.get_run(999)

        store.delete_run(ids[0])
        with pytest.raises(KeyError):
            store.get_run(ids[0])
        assert store.intervals(ids[0]) == []
        assert store.resources(ids[0]) == []
        assert store.errors(ids[0]) == []
        assert store.run_events(ids[0]) == []
        assert len(store.intervals(ids[1])) == 4
        with pytest.raises(KeyError):
            store.delete_run(ids[0])
    conn = sqlite3.connect(db_path)
    try:
        for table in ("intervals", "resources", "errors", "summaries", "run_events"):
            n = conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [ids[0]]).fetchone()
            assert n[0] == 0, table
    finally:
        conn.close()


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LAB_DB", raising=False)
    assert default_db_path() == Path("results.db")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
