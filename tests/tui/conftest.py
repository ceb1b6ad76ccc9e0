"""TUI fixtures: a fixed experiments folder, a fixture database built from synthetic
events, and a fake engine that replays synthetic events instead of starting processes.

Everything here is deterministic (fixed timestamps, fixed host facts, fixed names), so
the snapshot tests see the same screen on every machine.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from lab.analysis.summary import Latency, Summary
from lab.engine import RunControl, RunOutcome
from lab.events import (
    ErrorSample,
    Event,
    HostFacts,
    IntervalStats,
    Listener,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    TargetReady,
)
from lab.plan import RunPlan, plan_runs
from lab.spec import load_experiment
from lab.store import Recorder, Store

T0 = 1_767_600_000.0
"""2026-01-05 08:00:00 UTC: every synthetic run starts a fixed offset from here."""
HOST = HostFacts(cores=2, memory_bytes=8 * 1024**3, python="3.11.9", platform="Linux-test")

QUICK = """\
[experiment]
title = "Quick check"
question = "Does the fast endpoint answer?"
description = "A three-second run against the test target, for the TUI's own tests."

[target]
app = "targets.testing:app"
ready_path = "/health"

[load]
model = "closed"
vus = 2
duration = "3s"
timeout = "2s"

[[load.requests]]
path = "/fast"
"""

BROKEN = """\
[experiment]
title = "Broken on purpose"

[target]
app = "targets.testing:app"

[load]
vus = -3

[[load.requests]]
path = "/fast"
"""


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    """A folder with a frozen copy of the caching experiment (two variants, so the
    snapshots do not follow edits of the catalog), a quick one and an invalid one."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "caching.toml").write_text((Path(__file__).parent / "fixtures" / "caching.toml").read_text())
    (folder / "quick.toml").write_text(textwrap.dedent(QUICK))
    (folder / "broken.toml").write_text(textwrap.dedent(BROKEN))
    return folder


def caching_plans(experiments_dir: Path) -> list[RunPlan]:
    """The caching experiment's plans (no-cache, lru)."""
    return plan_runs(load_experiment(experiments_dir / "caching.toml"))


def synthetic_events(plan: RunPlan, key: str, base_rps: int, p95_ms: float, seconds: int,
                     started_at: float, *, user_change_at: int | None = None,
                     generator_cpu: float = 60.0, errors_every: int = 0) -> list[Event]:
    """A run's events without a run: a fixed, slightly wavy series (no clock, no random)."""
    events: list[Event] = [
        RunStarted(key, plan, started_at, HOST, "0.1.0"),
        TargetReady(key, "http://127.0.0.1:40000", 1000, 0.5),
        LoadChanged(key, 0.0, 0, float(plan.load.start_level), "stage"),
    ]
    vus = int(plan.load.start_level)
    for k in range(seconds):
        if user_change_at is not None and k == user_change_at:
            vus += max(1, vus // 4)
            events.append(LoadChanged(key, float(k), 0, float(vus), "user"))
        ok = base_rps + (k % 3) * base_rps // 10
        errors = 1 if errors_every and k % errors_every == errors_every - 1 else 0
        wave = 1 + (k % 4) / 10
        events.append(IntervalStats(
            run_key=key, t_s=float(k), duration_s=1.0, requests=ok + errors, ok=ok, errors=errors,
            errors_by_class={"http_5xx": errors} if errors else {}, bytes=ok * 200, dropped=0,
            interrupted=0, active_vus=vus, target_rate=0.0, histogram=b"", histogram_all=b"",
            histogram_service=b"", p50_ms=p95_ms * 0.6 * wave, p90_ms=p95_ms * 0.9 * wave,
            p95_ms=p95_ms * wave, p99_ms=p95_ms * 1.3 * wave, max_ms=p95_ms * 1.6 * wave))
        t = float(k + 1)
        events += [
            ResourceSample(key, t, "target", 1000, 80.0 + k % 5, 0.8 * t, 90_000_000 + k * 100_000, 4, 20),
            ResourceSample(key, t, "generator", 2000, generator_cpu, 0.6 * t, 50_000_000, 2, 40),
            ResourceSample(key, t, "lab", 3000, 3.0, 0.03 * t, 70_000_000, 6, 30),
            ResourceSample(key, t, "system", None, 150.0, 100.0 + t, 2_000_000_000, 0, 0,
                           detail={"cores": 2}),
        ]
    if errors_every:
        events.append(ErrorSample(key, "http_5xx", 503, "503 Service Unavailable",
                                  seconds // errors_every))
    return events


def summary_of(events: Sequence[Event], warmup: float, cpu_s_per_1k: float, rss: int,
               cache: float | None) -> Summary:
    """A summary consistent with the synthetic intervals (measured window only)."""
    ivs = [e for e in events if isinstance(e, IntervalStats) and e.t_s >= warmup]
    ok = sum(iv.ok for iv in ivs)
    errors = sum(iv.errors for iv in ivs)
    window = float(len(ivs))
    p95 = sorted(iv.p95_ms or 0.0 for iv in ivs)[len(ivs) // 2]
    lat = Latency(p50=round(p95 * 0.6, 2), p90=round(p95 * 0.9, 2), p95=round(p95, 2),
                  p99=round(p95 * 1.3, 2), max=round(p95 * 1.7, 2), mean=round(p95 * 0.65, 2),
                  count=ok)
    return Summary(requests=ok + errors, ok=ok, errors=errors, dropped=0, interrupted=0,
                   bytes=ok * 200, window_s=window, throughput_rps=round(ok / window, 1),
                   attempts_rps=round((ok + errors) / window, 1), latency_ms=lat, latency_all_ms=lat,
                   service_ms=lat, error_rate=errors / (ok + errors) if ok + errors else 0.0,
                   errors_by_class={"http_5xx": errors} if errors else {},
                   target_cpu_s_per_1k=cpu_s_per_1k, target_peak_rss_bytes=rss,
                   generator_cpu_s_per_1k=0.2, generator_peak_cpu_percent=70.0, cache_hit_ratio=cache)


def record(store: Store, events: list[Event], status: str, reason: str | None, ended_at: float,
           summary: Summary | None) -> None:
    """Write one synthetic run through the engine's own Recorder."""
    recorder = Recorder(store)
    for event in events:
        recorder(event)
    key = events[0].run_key
    recorder(RunFinished(key, status, reason, ended_at, summary))  # type: ignore[arg-type]


@pytest.fixture
def fixture_db(tmp_path: Path, experiments_dir: Path) -> Path:
    """Four stored runs of two experiments: a no-cache / lru pair, an aborted lru run and
    a quick run with errors."""
    path = tmp_path / "fixture.db"
    no_cache, lru = caching_plans(experiments_dir)
    quick = plan_runs(load_experiment(experiments_dir / "quick.toml"))[0]
    with Store(path) as store:
        ev = synthetic_events(no_cache, "run1", 128, 280.0, 20, T0)
        record(store, ev, "completed", None, T0 + 24.5, summary_of(ev, 3, 7.779, 96_256_000, 0.0))
        ev = synthetic_events(lru, "run2", 1530, 37.0, 20, T0 + 60)
        record(store, ev, "completed", None, T0 + 84.2, summary_of(ev, 3, 0.379, 168_820_000, 0.974))
        ev = synthetic_events(lru, "run3", 1490, 39.0, 8, T0 + 3600, user_change_at=5)
        record(store, ev, "aborted", "stopped by user", T0 + 3611.0,
               summary_of(ev, 3, 0.391, 150_000_000, 0.96))
        ev = synthetic_events(quick, "run4", 900, 2.1, 3, T0 + 7200, errors_every=2)
        record(store, ev, "completed", None, T0 + 7204.0, summary_of(ev, 0, 0.5, 60_000_000, None))
    return path


class FakeEngine:
    """Replays synthetic events for each plan, then holds the run "going on" until it is
    stopped (or, with ``hold=False``, ends it as completed at once).

    Args:
        seconds: intervals to emit per run.
        hold: keep each run going until ``control.stop()``.
        generator_cpu: the generator's CPU percent in every sample.
        gate: when given, the first half of each run's intervals go out, then the rest
            once the gate is set (to watch the screen between the two).
    """

    def __init__(self, seconds: int = 10, hold: bool = True, generator_cpu: float = 60.0,
                 gate: asyncio.Event | None = None) -> None:
        self.seconds = seconds
        self.hold = hold
        self.generator_cpu = generator_cpu
        self.gate = gate
        self.started: list[str] = []
        """Variants started, in order."""
        self.stop_reasons: list[str] = []

    async def __call__(self, plan: RunPlan, listeners: Sequence[Listener],
                       control: RunControl) -> RunOutcome:
        key = f"fake{len(self.started)}"
        self.started.append(plan.variant)
        events = synthetic_events(plan, key, 1200, 20.0, self.seconds, T0 + 100 * len(self.started),
                                  user_change_at=6, generator_cpu=self.generator_cpu)
        for event in events:
            if (self.gate is not None and isinstance(event, IntervalStats)
                    and event.t_s == self.seconds // 2):
                await self.gate.wait()
            for listener in listeners:
                listener(event)
        status, reason = "completed", None
        if self.hold:
            await control.stop_requested.wait()
            status, reason = "aborted", control.stop_reason
            self.stop_reasons.append(control.stop_reason)
        summary = summary_of(events, 0, 0.4, 100_000_000, None)
        finished = RunFinished(key, status, reason, T0 + 100 * len(self.started) + 12, summary)  # type: ignore[arg-type]
        for listener in listeners:
            listener(finished)
        return RunOutcome(key, status, reason, summary)  # type: ignore[arg-type]


@pytest.fixture
def fake_engine() -> Iterator[FakeEngine]:
    """A fake engine that holds each run until stopped."""
    yield FakeEngine()
