"""The engine in-process: worker splits, ramps, rate caps, bytes, resource sampling."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab.engine import RunControl, run_plan
from lab.events import (
    Event,
    GeneratorBound,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
)
from lab.progress import ProgressPrinter
from lab.store import Store, StoreRecorder
from lab.tui.live_model import LiveBridge
from tests.conftest import leaves_no_processes, plan_against_testing


def _plan(load: dict[str, Any], target: dict[str, Any] | None = None):
    return plan_against_testing(load, target, name="t")


async def _run(plan, control: RunControl | None = None) -> list[Event]:
    events: list[Event] = []
    await run_plan(plan, [events.append], control)
    return events


def _of(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture(scope="module")
def two_by_two() -> list[Event]:
    """The events of one run shared by the module's read-only tests: 3 VUs over two
    generator workers against a target of two uvicorn workers, 2 s of /fast."""
    with leaves_no_processes("the shared run"):
        return asyncio.run(_run(_plan({"vus": 3, "workers": 2, "duration": "2s",
                                       "requests": [{"path": "/fast"}]}, {"workers": 2})))


async def test_vus_are_split_exactly_across_workers(two_by_two: list[Event]) -> None:
    events = two_by_two
    intervals = _of(events, IntervalStats)
    assert [iv.active_vus for iv in intervals] == [3, 3]
    generators = {s.pid for s in _of(events, ResourceSample) if s.role == "generator"}
    assert len(generators) == 2
    finished = _of(events, RunFinished)[0]
    assert finished.status == "completed"
    assert finished.summary.ok == sum(iv.ok for iv in intervals)


async def test_low_rate_over_two_workers_is_neither_zero_nor_a_blast() -> None:
    # 0.75 req/s per worker: arrivals at 0, 0.67 and 1.33 s, in turn.
    events = await _run(_plan({"model": "open", "rate": 1.5, "workers": 2, "duration": "2s",
                               "requests": [{"path": "/fast"}]}))
    s = _of(events, RunFinished)[0].summary
    assert s.requests == 3
    assert sum(iv.target_rate for iv in _of(events, IntervalStats)) / 2 == pytest.approx(1.5)


async def test_closed_model_ramps_vus_linearly() -> None:
    events = await _run(_plan({"stages": [{"duration": "2s", "target": 6}, {"duration": "1s", "target": 6}],
                               "think_time": "20ms", "requests": [{"path": "/fast"}]}))
    vus = [iv.active_vus for iv in _of(events, IntervalStats)]
    # Partway up the ramp at the end of the first second (3 when the interval closes on
    # time; a busy machine closes it a little late): a ramp, not a step to 6.
    assert 0 < vus[0] < 6, vus
    assert vus[1:] == [6, 6]
    stages = [e.stage for e in _of(events, LoadChanged)]
    assert stages == [0, 1]


async def test_max_rps_caps_the_closed_model() -> None:
    events = await _run(_plan({"vus": 4, "max_rps": 40, "duration": "3s",
                               "requests": [{"path": "/fast"}]}))
    s = _of(events, RunFinished)[0].summary
    assert 80 <= s.requests <= 130  # ~40 req/s for 3 s, never the ~2,000 req/s uncapped
    assert s.cache_hit_ratio == 1.0  # the (one-worker) testing target counts /fast as hits


async def test_bytes_are_counted_exactly_and_connection_close_is_ok() -> None:
    events = await _run(_plan({"vus": 2, "duration": "1s", "requests": [
        {"path": "/chunked", "weight": 1}, {"path": "/close", "weight": 1}]}))
    s = _of(events, RunFinished)[0].summary
    assert s.errors == 0 and s.ok > 20
    # 3,000 bytes per chunked body and 6 ("closed") per /close, whatever the mix.
    n_chunked = (s.bytes - 6 * s.ok) // (3000 - 6)
    assert s.bytes == 3000 * n_chunked + 6 * (s.ok - n_chunked)
    assert 0 < n_chunked < s.ok


async def test_target_tree_is_sampled_and_first_reading_only_primes(two_by_two: list[Event]) -> None:
    events = two_by_two
    target = [s for s in _of(events, ResourceSample) if s.role == "target"]
    assert target[0].t_s == 0 and target[0].cpu_percent is None
    assert all(s.cpu_percent is not None for s in target[1:-1])
    assert max(s.processes for s in target) >= 3  # uvicorn supervisor + 2 workers
    assert target[-1].cpu_seconds >= target[0].cpu_seconds
    roles = {s.role for s in _of(events, ResourceSample)}
    assert roles == {"target", "generator", "lab", "system"}
    system = [s for s in _of(events, ResourceSample) if s.role == "system"][1]
    assert len(system.detail["per_core_percent"]) == system.detail["cores"]
    summary = _of(events, RunFinished)[0].summary
    assert summary.target_cpu_s_per_1k is not None and summary.target_cpu_s_per_1k > 0
    assert summary.target_peak_rss_bytes > 10 * 2**20
    # No cache_hit_ratio check here: each of the two uvicorn workers keeps its own counters,
    # so the window's start and end readings may come from different processes.


async def _until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    """Poll ``condition`` every 50 ms until it holds (failing after ``within_s``)."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def test_stop_keeps_what_was_measured(tmp_path: Path) -> None:
    control = RunControl()
    plan = _plan({"vus": 2, "duration": "20s", "requests": [{"path": "/fast"}]})
    seen: list[IntervalStats] = []

    def watch(event: Event) -> None:
        if isinstance(event, IntervalStats):
            seen.append(event)

    with Store(tmp_path / "r.db") as store:
        recorder = StoreRecorder(store)
        task = asyncio.create_task(run_plan(plan, [recorder, watch], control))
        await _until(lambda: len(seen) >= 2 or task.done())
        control.set_level(1)
        # Stopped once a whole interval ran at the new level.
        await _until(lambda: sum(iv.active_vus == 1 for iv in seen) >= 1 or task.done())
        control.stop("enough")
        outcome = await task
        run = store.get_run(recorder.last_run_id)
        intervals = store.intervals(run.id)
        events = store.run_events(run.id)
    assert outcome.status == "aborted" and run.status == "aborted" and run.reason == "enough"
    assert len(intervals) >= 3
    assert intervals[-1].active_vus == 1
    assert any(e.reason == "user" and e.level == 1 for e in events)
    assert run.summary is not None and run.summary.ok > 0


async def test_run_started_is_first_and_run_finished_last(two_by_two: list[Event]) -> None:
    events = two_by_two
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)


def test_engine_does_not_import_textual() -> None:
    code = ("import sys, lab, lab.engine, lab.cli, lab.store, lab.load.worker, lab.report.table; "
            "assert 'textual' not in sys.modules, 'textual imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_generator_reports_its_cpu_and_loop_lag() -> None:
    # httpx costs ~0.5 ms of CPU per request: 8 unpaced VUs keep its worker busy. The
    # intervals after the first are compared (busy ~100 %, idle < 10 % on a quiet machine;
    # a busy one gives the busy worker less, never the idle one more).
    busy_events = await _run(_plan({"vus": 8, "duration": "3s", "client": "httpx",
                                    "requests": [{"path": "/fast"}]}))
    idle_events = await _run(_plan({"vus": 2, "duration": "2s", "think_time": "100ms",
                                    "requests": [{"path": "/fast"}]}))
    busy_ivs, idle_ivs = _of(busy_events, IntervalStats), _of(idle_events, IntervalStats)
    assert all(iv.generator_cpu_percent is not None and iv.loop_lag_p99_ms is not None
               for iv in busy_ivs + idle_ivs)
    # An unpaced closed loop keeps its worker busy; a paced one leaves it mostly idle.
    busy_cpu = min(iv.generator_cpu_percent for iv in busy_ivs[1:])
    idle_cpu = max(iv.generator_cpu_percent for iv in idle_ivs[1:])
    assert busy_cpu > 2 * idle_cpu, (busy_cpu, idle_cpu)
    idle = _of(idle_events, RunFinished)[0].summary
    assert idle.loop_lag_p99_ms is not None and idle.loop_lag_p99_ms >= 0


async def _starve(pid: int, stopped_s: float = 0.06, running_s: float = 0.04) -> None:
    """Give process ``pid`` the CPU in bursts until cancelled: stopped 60 ms, running 40 ms,
    as a CPU hog with long time slices (or a container's CPU quota) would. It runs on
    (SIGCONT) when this ends."""
    try:
        while True:
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(stopped_s)
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(running_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def test_a_generator_starved_of_cpu_is_flagged_and_a_free_one_is_not(tmp_path: Path) -> None:
    # The same light load twice (2 VUs, 5 ms apart): once with the generator worker to
    # itself, once getting the CPU only 40 % of the time, in bursts, so its event loop
    # wakes up to 60 ms late (measured loop lag p99 ~60 ms against ~1 ms).
    plan = _plan({"vus": 2, "duration": "3s", "think_time": "5ms", "requests": [{"path": "/fast"}]})
    starving: list[asyncio.Task[None]] = []

    def starve_the_generator(event: Event) -> None:
        if isinstance(event, ResourceSample) and event.role == "generator" and not starving:
            assert event.pid is not None
            starving.append(asyncio.get_running_loop().create_task(_starve(event.pid)))
        elif isinstance(event, RunFinished):
            for task in starving:
                task.cancel()

    free_events: list[Event] = []
    starved_events: list[Event] = []
    progress = io.StringIO()
    with Store(tmp_path / "r.db") as store:
        free = await run_plan(plan, [StoreRecorder(store), free_events.append], RunControl())
        try:
            starved = await run_plan(plan, [StoreRecorder(store), starve_the_generator,
                                            starved_events.append, ProgressPrinter(progress)],
                                     RunControl())
        finally:
            for task in starving:
                task.cancel()
            await asyncio.gather(*starving, return_exceptions=True)
        starved_run, free_run = store.list_runs()
    assert starving and free.status == starved.status == "completed"
    # What the lab stored, and every report shows: the flag and the reason.
    assert free_run.summary is not None and starved_run.summary is not None
    assert not free_run.summary.generator_bound, free_run.summary
    assert free_run.summary.generator_bound_reason is None
    assert starved_run.summary.generator_bound, starved_run.summary
    reason = starved_run.summary.generator_bound_reason or ""
    assert re.fullmatch(r"generator event-loop lag p99 [\d.]+ ms > 10 ms", reason), reason
    # Warned about live too, by the same rule: one GeneratorBound before the run ended,
    # which the TUI's live model and the headless progress both show.
    warned = [e for e in starved_events if isinstance(e, GeneratorBound)]
    assert len(warned) == 1 and isinstance(starved_events[-1], RunFinished), starved_events[-3:]
    assert re.fullmatch(r"generator event-loop lag p99 [\d.]+ ms > 10 ms", warned[0].reason), warned
    assert not any(isinstance(e, GeneratorBound) for e in free_events)
    assert f"warning at {warned[0].t_s:.0f}s: generator-bound ({warned[0].reason})" in progress.getvalue()
    bridge = LiveBridge()
    for event in starved_events:
        bridge(event)
    assert bridge.snapshot.generator_bound and "loop lag p99" in bridge.snapshot.generator_bound_headline
