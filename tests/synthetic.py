"""Runs without load, for tests: synthetic engine events written through the store's own
recorder, consistent summaries, stored intervals and sweeps, and small experiment files.

Everything here is deterministic (fixed timestamps, fixed host facts, fixed names), so
the screens, reports and golden files built from it are the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lab.analysis.bound import BoundWatch
from lab.events import (
    ErrorSample,
    Event,
    GeneratorBound,
    HostFacts,
    IntervalStats,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    TargetReady,
)
from lab.figures import Latency, Summary
from lab.load.histogram import LatencyHistogram
from lab.plan import RunPlan, plan_runs
from lab.spec import load_experiment
from lab.store import IntervalRow, Store, StoreRecorder
from tests.conftest import REPO, write_experiment

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


ONE_SECOND = """\
[experiment]
title = "input errors"
[target]
app = "targets.testing:app"
[load]
vus = 1
duration = "1s"
[[load.requests]]
path = "/fast"
"""
"""A one-VU, one-second experiment against the testing target."""

USL_DEMO = f"""
    [experiment]
    title = "sweep"
    [target]
    app = "targets.usl_demo:app"
    app_dir = "{REPO}"
    env = {{ USL_WORK_MS = "20" }}
    [load]
    vus = 1
    duration = "10s"
    [[load.requests]]
    path = "/work"
"""
"""The usl-demo target at 20 ms of work per request, closed model, 10 s; add a sweep."""


NEEDS_REDIS = f"""
[experiment]
title = "skip"
[target]
app = "targets.testing:app"
app_dir = "{REPO}"
[load]
vus = 1
duration = "1s"
[[load.requests]]
path = "/fast"
[[variants]]
name = "plain"
[[variants]]
name = "with-redis"
services.redis = "required"
"""
"""Two variants on the test target; the second requires redis (skipped where it is missing)."""


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
    # As the engine does: the generator-bound rule over the intervals so far, here with
    # ``generator_cpu`` as the workers' own reading (the stored intervals keep none).
    watch = BoundWatch(plan.load.warmup)
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
        verdict = watch.add(replace(events[-1], generator_cpu_percent=generator_cpu))  # type: ignore[arg-type]
        if verdict is not None:
            events.append(GeneratorBound(key, float(k + 1), verdict.reason, verdict.headline))
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
    """Write one synthetic run through the engine's own StoreRecorder."""
    recorder = StoreRecorder(store)
    for event in events:
        recorder(event)
    key = events[0].run_key
    recorder(RunFinished(key, status, reason, ended_at, summary))  # type: ignore[arg-type]


def record_synthetic_sweeps(folder: Path, db: Path, curves: dict[str, tuple[float, float, float]],
                            levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32), fit: bool = True) -> None:
    """Store one sweep per variant whose throughput follows the USL curve (λ, σ, κ) of
    ``curves`` exactly, written through the StoreRecorder as a real run is (no load, no target);
    with ``fit``, analysed and saved as ``lab run`` does, so ``fits`` holds their N*."""
    from lab.analysis.sweep import analyse_stored
    from lab.events import HostFacts, RunFinished, RunStarted
    from lab.figures import Latency, Summary
    from lab.store import StoreRecorder

    variants = "".join(f'[[variants]]\nname = "{name}"\n' for name in curves)
    body = (USL_DEMO + f'\n[sweep]\nparameter = "vus"\nlevels = {list(levels)}\nduration = "1s"\n'
            + variants)
    plans = plan_runs(load_experiment(write_experiment(folder, body, name="synthetic")))
    host = HostFacts(cores=2, memory_bytes=8 * 1024**3, python="3.11.9", platform="Linux-test")
    with Store(db) as store:
        recorder = StoreRecorder(store)
        for i, plan in enumerate(plans):
            assert plan.sweep is not None
            lam, sigma, kappa = curves[plan.variant]
            n = plan.sweep.level
            x = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
            r_ms = n / x * 1000
            lat = Latency(p50=r_ms, p90=r_ms * 1.2, p95=r_ms * 1.3, p99=r_ms * 1.5, max=r_ms * 2,
                          mean=r_ms, count=int(x * 2))
            summary = Summary(requests=int(x * 2), ok=int(x * 2), errors=0, dropped=0, interrupted=0,
                              bytes=0, window_s=2.0, throughput_rps=x, attempts_rps=x, latency_ms=lat,
                              latency_all_ms=lat, service_ms=lat, error_rate=0.0)
            key = f"synthetic-{i}"
            recorder(RunStarted(key, plan, 1_700_000_000.0 + i, host, "0.1.0"))
            recorder(RunFinished(key, "completed", None, 1_700_000_000.5 + i, summary, {}))
        if fit:
            analyse_stored(store, [s.id for s in reversed(store.list_sweeps())], save=True)


def _iv(t_s: float, requests: int, duration_s: float = 1.0, in_flight: float | None = None,
        latency_ms: float = 10.0, stage: int = 0, target_rate: float = 0.0) -> IntervalRow:
    """A stored interval: ``requests`` all ok, all taking ``latency_ms``."""
    hist = LatencyHistogram()
    if requests:
        hist.add_counts({int(latency_ms * 1000): requests})
    blob = hist.encode()
    return IntervalRow(
        run_id=1, t_s=t_s, duration_s=duration_s, requests=requests, ok=requests, errors=0,
        bytes=0, dropped=0, interrupted=0, active_vus=0, target_rate=target_rate, stage=stage,
        errors_by_class={}, histogram=blob, histogram_all=blob, histogram_service=blob,
        p50_ms=None, p90_ms=None, p95_ms=None, p99_ms=None, max_ms=None, in_flight_mean=in_flight)


