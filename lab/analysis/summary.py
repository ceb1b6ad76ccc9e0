"""A run's headline figures, computed from merged interval histograms and resource samples.

Percentiles always come from histograms merged over the window, never from averaging
per-interval or per-worker percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lab.analysis.bound import generator_bound
from lab.analysis.offered import OfferedLoad
from lab.figures import CpuReading, IntervalCounts, Latency, Summary
from lab.load.histogram import LatencyHistogram


def latency_of(hist: LatencyHistogram) -> Latency:
    """The percentiles of a merged histogram, in milliseconds (all 0.0 when it is empty)."""
    return Latency(
        p50=hist.percentile_ms(50),
        p90=hist.percentile_ms(90),
        p95=hist.percentile_ms(95),
        p99=hist.percentile_ms(99),
        max=hist.max_ms(),
        mean=hist.mean_ms(),
        count=hist.count,
    )


def nothing_served(summary: Summary) -> str | None:
    """One phrase when no request of the window succeeded (a target that answers nothing,
    or only errors), else None: such a run's latency columns are empty and its req/s is 0,
    which reads like a quiet table rather than a broken target.

    E.g. ``every request failed: 32 errors (32 timeout)``.
    """
    if summary.ok > 0:
        return None
    lost = [f"{n:,} {what}" for n, what in ((summary.dropped, "dropped"),
                                            (summary.interrupted, "interrupted")) if n]
    if summary.requests == 0:
        return "no request completed" + (f" ({', '.join(lost)})" if lost else "")
    classes = sorted(summary.errors_by_class.items(), key=lambda item: (-item[1], item[0]))
    detail = ", ".join([f"{n:,} {cls}" for cls, n in classes if n] + lost)
    plural = "s" if summary.errors != 1 else ""
    return f"every request failed: {summary.errors:,} error{plural}" + (f" ({detail})" if detail else "")


MIN_MEASURED_S = 1.0
"""A run is summarised only when it measured at least this long after its warm-up: over
a fraction of a second a handful of requests decide the figures (a crashed run capped at
200 req/s read 2,397 req/s over the 0.08 s it measured; ``--duration 1ms`` read 124 req/s
from 7 requests in 56 ms). A run planned shorter gets `min_measured_for` instead."""

MIN_SHORT_RUN_S = 0.5
"""The least a run planned to measure under `MIN_MEASURED_S` (a sweep's quick 0.6 s
levels) must measure to be summarised."""


def min_measured_for(planned_s: float) -> float:
    """The shortest measured window a run is summarised over: `MIN_MEASURED_S`, or the
    window it was planned to measure when that is shorter (a sweep's 0.6 s levels are
    deliberate), but never under `MIN_SHORT_RUN_S`.

    Args:
        planned_s: seconds the run was planned to measure: its length minus its warm-up
            rounded up to whole intervals (`planned_measured_s`).
    """
    return max(MIN_SHORT_RUN_S, min(MIN_MEASURED_S, planned_s))


def planned_measured_s(total_s: float, warmup_s: float, interval_s: float = 1.0) -> float:
    """Seconds a run of ``total_s`` would measure after a warm-up of ``warmup_s``: the
    window starts at the first whole interval after the warm-up (see `summarise`)."""
    start = math.ceil(warmup_s / interval_s - 1e-9) * interval_s if warmup_s > 0 else 0.0
    return max(0.0, total_s - start)


def measured_s(intervals: Sequence[IntervalCounts], warmup_s: float) -> float:
    """Seconds of load measured after the warm-up: from its end (rounded up to a whole
    interval) to the end of the last interval, i.e. the moment the load stopped."""
    return sum(iv.duration_s for iv in intervals if iv.t_s + 1e-9 >= warmup_s)


def too_short_note(intervals: Sequence[IntervalCounts], warmup_s: float,
                   min_s: float = MIN_MEASURED_S, stopped_early: bool = True) -> str | None:
    """Why a run has no summary although it sent load (one phrase), or None when it
    measured ``min_s`` or more, or measured nothing at all.

    Args:
        min_s: the least it had to measure (`min_measured_for` of its plan).
        stopped_early: the run failed or was aborted (else it completed as planned).
    """
    if not intervals:
        return None
    measured = measured_s(intervals, warmup_s)
    if measured >= min_s - 1e-9:
        return None
    if measured <= 0:
        if stopped_early:
            return f"too short to summarise: stopped during the {warmup_s:g} s warm-up"
        return f"too short to summarise: no whole interval after the {warmup_s:g} s warm-up"
    after = " after the warm-up" if warmup_s > 0 else ""
    return (f"too short to summarise: {measured:.2f} s measured{after} "
            f"(at least {min_s:g} s needed)")


def summarise(
    intervals: Sequence[IntervalCounts],
    resources: Sequence[CpuReading],
    warmup_s: float,
    cache_stats: dict[str, object] | None = None,
    min_measured_s: float = 0.0,
    offered: OfferedLoad | None = None,
    generator_labels: Mapping[int, str] | None = None,
) -> Summary | None:
    """Summarise a run over its measured window: from the end of the warm-up to the end
    of its last interval (the run's planned end, or the moment it stopped early).

    Requests count in the interval they completed in, so only requests completed inside
    the window count; CPU is the processes' CPU over the same window (interpolated
    between resource readings), so work done after the load stopped (a backlog of
    requests the generator gave up on) is not charged to the requests measured.

    Args:
        intervals: merged intervals in time order.
        resources: resource readings in time order (any roles).
        warmup_s: intervals starting before this many seconds are excluded; warm-up is
            therefore rounded up to whole intervals.
        cache_stats: ``{"cache_hits": int, "cache_misses": int}`` over the window, if the
            target reports them.
        min_measured_s: no summary for a window shorter than this (`min_measured_for`
            the run's plan).
        offered: the run's offered against achieved load (`lab.analysis.offered`), if it
            had an intended rate.
        generator_labels: how the generator-bound reason names each worker (``host-b,
            worker 2``); default ``worker N``.

    Returns:
        The summary, or None when no interval lies in the measured window, or the window
        is shorter than ``min_measured_s``.
    """
    window = [iv for iv in intervals if iv.t_s + 1e-9 >= warmup_s]
    if not window or measured_s(window, warmup_s) < min_measured_s - 1e-9:
        return None
    ok_hist, all_hist, svc_hist = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    lag_hist = LatencyHistogram()
    by_class: dict[str, int] = {}
    for iv in window:
        lag_hist.merge_encoded(iv.histogram_lag)
        ok_hist.merge_encoded(iv.histogram)
        all_hist.merge_encoded(iv.histogram_all)
        svc_hist.merge_encoded(iv.histogram_service)
        for cls, n in iv.errors_by_class.items():
            by_class[cls] = by_class.get(cls, 0) + n
    ok = sum(iv.ok for iv in window)
    errors = sum(iv.errors for iv in window)
    requests = ok + errors
    window_s = sum(iv.duration_s for iv in window)
    start_s = window[0].t_s
    end_s = window[-1].t_s + window[-1].duration_s
    per_s = (lambda n: n / window_s) if window_s > 0 else (lambda n: 0.0)

    target_cpu = _cpu_delta(resources, "target", start_s, end_s)
    gen_cpu = _cpu_delta(resources, "generator", start_s, end_s)
    target_rss = [r.rss_bytes for r in resources if r.role == "target" and r.t_s >= start_s]
    gen_pct = [float(r.cpu_percent) for r in resources
               if r.role == "generator" and r.t_s > start_s and r.cpu_percent is not None]

    bound = generator_bound(window, lag_hist, generator_labels)
    hit_ratio = None
    if cache_stats:
        hits = cache_stats.get("cache_hits")
        misses = cache_stats.get("cache_misses")
        if isinstance(hits, int) and isinstance(misses, int) and hits + misses > 0:
            hit_ratio = hits / (hits + misses)

    return Summary(
        requests=requests,
        ok=ok,
        errors=errors,
        dropped=sum(iv.dropped for iv in window),
        interrupted=sum(iv.interrupted for iv in window),
        bytes=sum(iv.bytes for iv in window),
        window_s=window_s,
        throughput_rps=per_s(ok),
        attempts_rps=per_s(requests),
        latency_ms=latency_of(ok_hist),
        latency_all_ms=latency_of(all_hist),
        service_ms=latency_of(svc_hist),
        error_rate=errors / requests if requests else 0.0,
        errors_by_class=by_class,
        target_cpu_s_per_1k=(target_cpu / requests * 1000) if target_cpu is not None and requests else None,
        target_peak_rss_bytes=max(target_rss) if target_rss else None,
        generator_cpu_s_per_1k=(gen_cpu / requests * 1000) if gen_cpu is not None and requests else None,
        generator_peak_cpu_percent=max(gen_pct) if gen_pct else None,
        cache_hit_ratio=hit_ratio,
        generator_bound=bound is not None,
        generator_bound_reason=bound.reason if bound is not None else None,
        loop_lag_p99_ms=lag_hist.percentile_ms(99) if lag_hist.count else None,
        offered_rps=offered.offered_rps if offered else None,
        achieved_rps=offered.achieved_rps if offered else None,
        load_not_achieved=bool(offered and offered.not_achieved),
        load_not_achieved_reason=offered.reason if offered else None,
    )


def _cpu_delta(resources: Sequence[CpuReading], role: str, start_s: float,
               end_s: float) -> float | None:
    """CPU-seconds a role spent from ``start_s`` to ``end_s``, summed over pids.

    Each pid's cumulative CPU is read at both instants, linearly between the readings
    around each (the sampler reads about once a second, and once more when a run
    stops). A pid with no reading at or before ``start_s`` appeared later: its CPU
    counts from zero, since it started within the window. After its last reading a pid
    keeps that reading (it ended, or the run did).
    """
    by_pid: dict[int | None, list[CpuReading]] = {}
    for r in resources:
        if r.role == role:
            by_pid.setdefault(r.pid, []).append(r)
    if not by_pid:
        return None
    total = 0.0
    for readings in by_pid.values():
        total += max(0.0, _cpu_at(readings, end_s) - _cpu_at(readings, start_s))
    return total


def _cpu_at(readings: Sequence[CpuReading], t_s: float) -> float:
    """One pid's cumulative CPU-seconds at ``t_s`` (see ``_cpu_delta``)."""
    before = [r for r in readings if r.t_s <= t_s + 1e-9]
    if not before:
        return 0.0
    last = before[-1]
    after = [r for r in readings if r.t_s > t_s + 1e-9]
    if not after or last.t_s >= t_s - 1e-9:
        return last.cpu_seconds
    nxt = after[0]
    share = (t_s - last.t_s) / (nxt.t_s - last.t_s)
    return last.cpu_seconds + (nxt.cpu_seconds - last.cpu_seconds) * share
