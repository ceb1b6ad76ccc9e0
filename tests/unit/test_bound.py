"""The generator-bound rule (``lab.analysis.bound``) gives the live warning and the stored
verdict alike: the same thresholds, the same words, from the workers' own reports."""

from __future__ import annotations

import io

from lab.analysis.bound import LIVE_AFTER_S, BoundWatch, generator_bound
from lab.analysis.summary import summarise
from lab.events import GeneratorBound
from lab.figures import IntervalCounts
from lab.load.histogram import LatencyHistogram
from lab.progress import ProgressPrinter


def _iv(t: float, cpu: float | None = 20.0, lag_ms: float = 0.5, duration_s: float = 1.0,
        stalls_ms: tuple[float, ...] = ()) -> IntervalCounts:
    lag = LatencyHistogram()
    for _ in range(100 - len(stalls_ms)):  # the probe's 10 ms wake-ups in a second, this late
        lag.record_s(lag_ms / 1000)
    for ms in stalls_ms:
        lag.record_s(ms / 1000)
    return IntervalCounts(t_s=t, duration_s=duration_s, ok=10, errors=0, dropped=0, interrupted=0,
                          bytes=0, errors_by_class={}, histogram=b"", histogram_all=b"",
                          histogram_service=b"", generator_cpu_percent=cpu, histogram_lag=lag.encode())


def _live(intervals: list[IntervalCounts], warmup_s: float = 0.0) -> list[tuple[float, str]]:
    watch = BoundWatch(warmup_s)
    return [(iv.t_s + iv.duration_s, v.reason) for iv in intervals
            if (v := watch.add(iv)) is not None]


def test_a_run_limited_by_loop_lag_is_warned_about_live_and_stored_alike() -> None:
    run = [_iv(t, cpu=30.0, lag_ms=25.0) for t in range(5)]  # CPU to spare, a lagging loop
    stored = summarise(run, [], 0.0)
    assert stored is not None and stored.generator_bound
    live = _live(run)
    assert live == [(LIVE_AFTER_S, stored.generator_bound_reason)], live  # once, at 3 s
    assert stored.generator_bound_reason == "generator event-loop lag p99 25.0 ms > 10 ms"


def test_a_saturated_generator_is_warned_about_live_and_stored_alike() -> None:
    run = [_iv(0, 40.0)] + [_iv(t, 97.0) for t in range(1, 6)]
    stored = summarise(run, [], 0.0)
    live = _live(run)
    assert stored is not None and stored.generator_bound
    assert live == [(4.0, "a generator worker stayed at >= 90% CPU for 3s")], live
    assert stored.generator_bound_reason == "a generator worker stayed at >= 90% CPU for 5s"


def test_a_free_generator_is_never_warned_about() -> None:
    run = [_iv(t, 60.0, 1.0) for t in range(6)]
    assert _live(run) == [] and generator_bound(run) is None
    stored = summarise(run, [], 0.0)
    assert stored is not None and not stored.generator_bound


def test_the_warm_up_is_not_judged_live_or_stored() -> None:
    run = [_iv(t, 99.0, 40.0) for t in range(3)] + [_iv(t, 50.0) for t in range(3, 8)]
    stored = summarise(run, [], 3.0)
    assert stored is not None and not stored.generator_bound
    assert _live(run, warmup_s=3.0) == []


def test_one_stall_in_the_first_second_waits_for_a_window_to_judge() -> None:
    run = [_iv(0, 30.0, stalls_ms=(200.0, 200.0))] + [_iv(t, 30.0) for t in range(1, 8)]
    assert generator_bound(run[:1]) is not None  # over its first second alone: bound
    assert _live(run[:2]) == []  # live, a verdict waits for 3 s of window
    stored = summarise(run, [], 0.0)
    assert stored is not None and not stored.generator_bound and _live(run) == []


def test_headless_progress_prints_the_live_warning() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    printer(GeneratorBound("k", 3.0, "generator event-loop lag p99 25.0 ms > 10 ms",
                           "generator loop lag p99 25.0 ms > 10 ms"))
    assert out.getvalue() == ("[] warning at 3s: generator-bound (generator event-loop lag p99 25.0 ms "
                              "> 10 ms); results may be limited by the load generator\n")
