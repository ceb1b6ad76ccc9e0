"""How runs end early: a target that crashes, a stop (Ctrl-C, SIGTERM, the TUI's `s`), a lab
killed with SIGKILL. The figures of what was measured must be right, or plainly absent.

The engine tests start real targets (run them under ``flock /tmp/lab-measure.lock``); the
store tests only write SQLite files.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from lab.analysis.summary import MIN_MEASURED_S, summarise
from lab.engine import RunControl, run_plan
from lab.events import (
    Event,
    HostFacts,
    IntervalStats,
    ResourceSample,
    RunStarted,
)
from lab.load.histogram import LatencyHistogram
from lab.report import comparison_table, experiment_json, render, run_details
from lab.results import open_results as Store  # the store as lab run and the TUI open it
from lab.store import StoreRecorder
from tests.conftest import plan_against_testing


def _plan(load: dict[str, Any], target: dict[str, Any] | None = None):
    return plan_against_testing(load, target, name="endings")


async def _run_stopping_at(plan, stop_at_s: float | None, db: Path) -> tuple[Any, list[Event]]:
    """Run ``plan`` recorded into ``db``; stop it ``stop_at_s`` after the load began."""
    control = RunControl()
    events: list[Event] = []

    def watch(event: Event) -> None:
        events.append(event)
        if isinstance(event, ResourceSample) and event.t_s == 0 and stop_at_s is not None:
            # The priming reading is taken as the load starts: time the stop from it.
            asyncio.get_running_loop().call_later(stop_at_s, control.stop, "stopped by the test")

    with Store(db) as store:
        outcome = await run_plan(plan, [StoreRecorder(store), watch], control)
    return outcome, events


def _intervals(events: list[Event]) -> list[IntervalStats]:
    return [e for e in events if isinstance(e, IntervalStats)]


# ------------------------------------------------------------------ too short to summarise


@pytest.mark.parametrize("ending", ["crash just after the warm-up", "stop during the warm-up"])
async def test_a_run_that_stops_with_under_a_second_measured_has_no_figures(
        ending: str, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    if ending.startswith("crash"):
        # At 200 req/s the target dies on its 211th request, about 1.05 s in: some 0.05 s
        # after the 1 s warm-up.
        plan = _plan({"vus": 4, "max_rps": 200, "warmup": "1s", "duration": "10s",
                      "requests": [{"path": "/crash-after"}]},
                     {"env": {"CRASH_AFTER_REQUESTS": "210"}})
        outcome, events = await _run_stopping_at(plan, None, db)
        assert outcome.status == "failed" and "target exited with code 3" in outcome.reason
        expected = "too short to summarise: 0."
    else:
        plan = _plan({"vus": 2, "warmup": "2s", "duration": "10s", "requests": [{"path": "/fast"}]})
        outcome, events = await _run_stopping_at(plan, 1.3, db)
        assert outcome.status == "aborted"
        expected = "too short to summarise: stopped during the 2 s warm-up"
    # Load went out and was stored, but under a second of it after the warm-up: figures over
    # such a window are noise (the crashed run read 200 attempts/s and more at a 200 req/s
    # cap, up to 1,300/s while the cap let each second's requests out at once).
    assert sum(iv.requests for iv in _intervals(events)) > 0
    assert outcome.summary is None
    assert expected in outcome.reason, outcome.reason
    with Store(db, readonly=True) as store:
        run = store.list_runs()[0]
        assert store.intervals(run.id)
    # Every output says "not measured" (and why), never a number.
    assert run.summary is None and expected in run.reason
    doc = experiment_json("endings", [run])["runs"][0]
    assert doc["measured"] is False and expected in doc["reason"]
    shown = render(run_details(run), width=200)
    assert "nothing measured" in shown and expected in shown
    row = render(comparison_table([run]), width=200).splitlines()
    assert any(run.status in line and "–" in line for line in row)


# ------------------------------------------------------------------ figures over what was measured


async def test_a_failed_run_is_summarised_over_the_time_it_measured(tmp_path: Path) -> None:
    # 100 arrivals a second; the target dies on its 250th request, about 2.5 s in.
    plan = _plan({"model": "open", "rate": 100, "warmup": "1s", "duration": "10s",
                  "requests": [{"path": "/crash-after"}]},
                 {"env": {"CRASH_AFTER_REQUESTS": "250"}})
    outcome, events = await _run_stopping_at(plan, None, tmp_path / "r.db")
    assert outcome.status == "failed" and "target exited with code 3" in outcome.reason
    s = outcome.summary
    assert s is not None
    last = _intervals(events)[-1]
    # The window runs from the end of the warm-up to the moment the load stopped.
    assert s.window_s == pytest.approx(last.t_s + last.duration_s - 1.0, abs=1e-6)
    assert 1.2 <= s.window_s <= 2.2
    # The real rate: 100 arrivals a second, answered until the crash, refused after it.
    assert 85 <= s.attempts_rps <= 115, s
    assert 75 <= s.throughput_rps <= 110, s


async def test_an_aborted_run_charges_only_the_cpu_of_its_window(tmp_path: Path) -> None:
    # One process with the GIL serves one ~25 ms request at a time; 32 VUs keep a queue of
    # 32 requests (~0.8 s of CPU) that it still works off after the stop, for nobody.
    plan = _plan({"vus": 32, "warmup": "1s", "duration": "20s", "timeout": "5s",
                  "requests": [{"path": "/cpu"}]},
                 {"app": "targets.cpu:app", "env": {"CPU_ITERATIONS": "180000"}})
    outcome, events = await _run_stopping_at(plan, 2.7, tmp_path / "r.db")
    assert outcome.status == "aborted" and outcome.reason == "stopped by the test"
    s = outcome.summary
    assert s is not None and s.window_s >= MIN_MEASURED_S and s.interrupted > 0
    # CPU per request × requests per second = the cores the target used: one at most, and
    # what its CPU readings from the warm-up's end to the stop say (beside other suites'
    # runs: 0.39 and 0.39 cores). With the backlog worked off after the stop charged to the
    # window's requests it read about 1.5 cores on a quiet machine, twice the readings.
    cores = s.target_cpu_s_per_1k / 1000 * s.attempts_rps
    target = [e for e in events if isinstance(e, ResourceSample) and e.role == "target"
              and 1.0 - 1e-6 <= e.t_s <= 1.0 + s.window_s + 0.05]
    read = (target[-1].cpu_seconds - target[0].cpu_seconds) / (target[-1].t_s - target[0].t_s)
    assert cores <= 1.1 and cores == pytest.approx(read, rel=0.2), (cores, read, s)
    # Throughput is what the whole seconds of the window ran at, within noise.
    whole = [iv for iv in _intervals(events) if iv.t_s >= 1 and iv.duration_s == 1.0]
    per_second = sum(iv.ok for iv in whole) / len(whole)
    assert s.throughput_rps == pytest.approx(per_second, rel=0.35)


# ------------------------------------------------------------------ a lab killed with SIGKILL

HOST = HostFacts(cores=2, memory_bytes=2**30, python="3.11", platform="test")


class _Plan:
    experiment, variant, title = "endings", "killed", "killed"

    def config(self) -> dict[str, Any]:
        return {"load": {"warmup": 1.0, "vus": 2}}


def _stored_run(db: Path, seconds: int, ok_per_s: int = 100) -> int:
    """A run recorded as a killed lab leaves it: intervals and readings, no end."""
    key = uuid.uuid4().hex
    with Store(db) as store:
        rec = StoreRecorder(store)
        rec(RunStarted(key, _Plan(), 1_800_000_000.0, HOST, "0.1.0"))  # type: ignore[arg-type]
        for t in range(seconds):
            hist = LatencyHistogram()
            hist.add_counts({2000: ok_per_s})
            blob = hist.encode()
            rec(IntervalStats(key, t_s=float(t), duration_s=1.0, requests=ok_per_s, ok=ok_per_s,
                              errors=0, errors_by_class={}, bytes=0, dropped=0, interrupted=0,
                              active_vus=2, target_rate=0.0, histogram=blob, histogram_all=blob,
                              histogram_service=blob, p50_ms=2.0, p90_ms=2.0, p95_ms=2.0,
                              p99_ms=2.0, max_ms=2.0))
            rec(ResourceSample(key, float(t), "target", 7, 50.0, 0.5 * t, 10**7, 1, 1, 1))
        rec(ResourceSample(key, float(seconds), "target", 7, 50.0, 0.5 * seconds, 10**7, 1, 1, 1))
        return rec.run_id_for(key)


def _set_owner(db: Path, run_id: int, **values: Any) -> None:
    with Store(db) as store, store._write() as conn:
        sets = ", ".join(f"{k} = ?" for k in values)
        conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*values.values(), run_id])


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


def test_a_killed_run_is_marked_and_summarised_from_what_it_stored(tmp_path: Path, dead_pid: int) -> None:
    db = tmp_path / "r.db"
    run_id = _stored_run(db, seconds=4)
    _set_owner(db, run_id, lab_pid=dead_pid)  # the lab that recorded it is gone
    # Read-only (lab runs / lab show): shown as it will be stored, nothing written.
    with Store(db, readonly=True) as store:
        shown = store.get_run(run_id)
        assert store._query("SELECT status FROM runs")[0]["status"] == "running"
    # Opened for writing (lab run, the TUI): marked for good.
    with Store(db) as store:
        run = store.get_run(run_id)
        expected = summarise(store.interval_counts(run_id), store.cpu_readings(run_id), 1.0)
    for r in (shown, run):
        assert r.status == "failed"
        assert r.reason.startswith(f"killed: the lab process (pid {dead_pid}) ended without finishing")
        assert r.summary == expected
    assert run.summary is not None and run.summary.window_s == 3.0
    assert run.summary.throughput_rps == 100.0
    assert run.summary.target_cpu_s_per_1k == pytest.approx(1.5 / 300 * 1000)


def test_a_killed_run_with_under_a_second_measured_says_so(tmp_path: Path, dead_pid: int) -> None:
    db = tmp_path / "r.db"
    run_id = _stored_run(db, seconds=1)  # the warm-up only
    _set_owner(db, run_id, lab_pid=dead_pid)
    with Store(db) as store:
        run = store.get_run(run_id)
    assert run.status == "failed" and run.summary is None
    assert "too short to summarise: stopped during the 1 s warm-up" in run.reason


def test_runs_of_live_labs_and_of_other_hosts_are_left_running(tmp_path: Path, dead_pid: int) -> None:
    db = tmp_path / "r.db"
    mine = _stored_run(db, seconds=3)  # recorded by this (live) process
    reused = _stored_run(db, seconds=3)
    elsewhere = _stored_run(db, seconds=3)
    # A live process holds the pid now, but it started after the lab that recorded the run.
    _set_owner(db, reused, lab_started_at_unix=psutil.Process().create_time() - 100.0)
    _set_owner(db, elsewhere, lab_pid=dead_pid, lab_host=socket.gethostname() + "-other")
    with Store(db) as store:
        status = {r.id: r.status for r in store.list_runs()}
    assert status == {mine: "running", reused: "failed", elsewhere: "running"}
