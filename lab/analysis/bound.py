"""The generator-bound rule: one rule for the live warning and the stored verdict.

A run is generator-bound when its load generator ran out of CPU or fell behind its own
schedule, so its figures describe the generator rather than the target. The rule reads
only what the workers report in each interval (their own CPU and their event-loop and
send lag), so the engine can apply it while the run goes on (``BoundWatch``, which emits
``lab.events.GeneratorBound``) and the summary applies it to the whole measured window
(``generator_bound``), with the same thresholds and the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from lab.load.histogram import LatencyHistogram

GENERATOR_BUSY_PERCENT = 90.0
"""A generator worker at or above this CPU percent (of one core) is saturated."""
GENERATOR_BUSY_FOR_S = 3.0
"""…and a run whose generator stays saturated this long is generator-bound."""
LOOP_LAG_LIMIT_MS = 10.0
"""A generator event-loop lag p99 above this makes a run generator-bound: every send
and every read waited that long behind other work."""
LIVE_AFTER_S = GENERATOR_BUSY_FOR_S
"""The live verdict waits for this much measured window: a lag p99 over the first second
alone turns on a single stall that the whole run's p99 would not show."""


class BoundInput(Protocol):
    """What the rule reads of one interval (``IntervalCounts`` and ``IntervalStats`` have it)."""

    @property
    def t_s(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def generator_cpu_percent(self) -> float | None: ...
    @property
    def histogram_lag(self) -> bytes: ...


@dataclass(frozen=True)
class BoundVerdict:
    """Why the generator limited a window of a run."""

    busy_s: float | None
    """Longest run of seconds a worker stayed at or above ``GENERATOR_BUSY_PERCENT`` CPU,
    when it reached ``GENERATOR_BUSY_FOR_S``; else None."""
    lag_p99_ms: float | None
    """The workers' merged lag p99, ms, when it exceeded ``LOOP_LAG_LIMIT_MS``; else None."""
    busy_worker: str | None = None
    """Which worker stayed busy (``worker 1``, ``host-b, worker 2``), when the intervals
    say per worker; None when only the busiest worker's CPU is known."""
    busy_cpu_percent: float | None = None
    """That worker's mean CPU over its busy streak, percent of one core."""
    lag_worker: str | None = None
    """With ``lag_p99_ms``: the worker whose own lag p99 over the window was highest,
    when the intervals carry each worker's lag histogram."""
    lag_worker_p99_ms: float | None = None
    """That worker's own lag p99 over the window, ms."""

    @property
    def reason(self) -> str:
        """One line, as stored in ``summaries.generator_bound_reason`` and every report,
        e.g. ``generator event-loop lag p99 12.4 ms > 10 ms``."""
        reasons = []
        if self.busy_s is not None and self.busy_worker is not None:
            reasons.append(f"{self.busy_worker}: {self.busy_cpu_percent or 0:.0f}% CPU for "
                           f"{self.busy_s:.0f}s (at >= {GENERATOR_BUSY_PERCENT:g}% throughout)")
        elif self.busy_s is not None:
            reasons.append(f"a generator worker stayed at >= {GENERATOR_BUSY_PERCENT:g}% CPU for "
                           f"{self.busy_s:.0f}s")
        if self.lag_p99_ms is not None:
            worst = (f" (worst: {self.lag_worker}, {self.lag_worker_p99_ms:.1f} ms)"
                     if self.lag_worker is not None and self.lag_worker_p99_ms is not None else "")
            reasons.append(f"generator event-loop lag p99 {self.lag_p99_ms:.1f} ms "
                           f"> {LOOP_LAG_LIMIT_MS:g} ms{worst}")
        return "; ".join(reasons)

    @property
    def headline(self) -> str:
        """The reason as a short banner, e.g. ``generator ≥ 90% CPU for 3 s``."""
        parts = []
        if self.busy_s is not None:
            who = f"generator ({self.busy_worker})" if self.busy_worker else "generator"
            parts.append(f"{who} ≥ {GENERATOR_BUSY_PERCENT:.0f}% CPU for {self.busy_s:.0f} s")
        if self.lag_p99_ms is not None:
            parts.append(f"generator loop lag p99 {self.lag_p99_ms:.1f} ms > {LOOP_LAG_LIMIT_MS:g} ms")
        return "; ".join(parts)


def _streaks(window: Sequence[BoundInput]) -> list[tuple[int | None, list[tuple[float, float | None]]]]:
    """Each worker's (duration_s, cpu_percent) series; one series of the busiest worker's
    CPU (worker None) when the intervals do not say per worker."""
    width = max((len(getattr(iv, "generator_cpu_by_worker", ()) or ()) for iv in window), default=0)
    if width == 0:
        return [(None, [(iv.duration_s, iv.generator_cpu_percent) for iv in window])]
    out: list[tuple[int | None, list[tuple[float, float | None]]]] = []
    for w in range(width):
        series = []
        for iv in window:
            by = getattr(iv, "generator_cpu_by_worker", ()) or ()
            series.append((iv.duration_s, by[w] if w < len(by) else None))
        out.append((w, series))
    return out


def _longest_busy(series: list[tuple[float, float | None]]) -> tuple[float, float]:
    """The longest streak of busy seconds and the mean CPU over it."""
    streak = longest = 0.0
    area = best_area = 0.0
    for duration, cpu in series:
        if cpu is not None and cpu >= GENERATOR_BUSY_PERCENT:
            streak += duration
            area += cpu * duration
        else:
            streak = area = 0.0
        if streak > longest + 1e-9:
            longest, best_area = streak, area
    return longest, (best_area / longest if longest > 0 else 0.0)


def generator_bound(window: Sequence[BoundInput], lag: LatencyHistogram | None = None,
                    labels: Mapping[int, str] | None = None) -> BoundVerdict | None:
    """The verdict over a window of merged intervals, or None when the generator kept up.

    Generator-bound: some worker stayed at or above 90 % CPU for at least 3 s in a row,
    or the workers' lag p99 (their loop-lag probe and, open model, send lag, merged over
    the window) exceeded 10 ms.

    Args:
        window: the intervals, in time order.
        lag: their lag histograms already merged (the summary has it); merged here when None.
        labels: how to name each worker (``host-b, worker 2``); default ``worker N``.
    """
    if lag is None:
        lag = LatencyHistogram()
        for iv in window:
            lag.merge_encoded(iv.histogram_lag)
    longest, mean_cpu, worker = 0.0, 0.0, None
    for w, series in _streaks(window):
        streak, cpu = _longest_busy(series)
        if streak > longest + 1e-9:
            longest, mean_cpu, worker = streak, cpu, w
    busy_s = longest if longest >= GENERATOR_BUSY_FOR_S - 1e-6 else None
    lag_p99 = lag.percentile_ms(99) if lag.count else None
    lag_over = lag_p99 if lag_p99 is not None and lag_p99 > LOOP_LAG_LIMIT_MS else None
    if busy_s is None and lag_over is None:
        return None
    names = labels or {}
    busy_name = names.get(worker, f"worker {worker}") if busy_s is not None and worker is not None else None
    lag_name, lag_worst = None, None
    if lag_over is not None:
        worst = _worst_lag(window)
        if worst is not None:
            lag_name, lag_worst = names.get(worst[0], f"worker {worst[0]}"), round(worst[1], 1)
    return BoundVerdict(busy_s, lag_over, busy_name,
                        round(mean_cpu, 1) if busy_name is not None else None, lag_name, lag_worst)


def _worst_lag(window: Sequence[BoundInput]) -> tuple[int, float] | None:
    """The worker whose own lag histogram over the window has the highest p99, with it;
    None when the intervals do not carry each worker's histogram, or there is one worker."""
    merged: dict[int, LatencyHistogram] = {}
    for iv in window:
        for w, blob in enumerate(getattr(iv, "histogram_lag_by_worker", ()) or ()):
            if blob:
                merged.setdefault(w, LatencyHistogram()).merge_encoded(blob)
    p99s = [(w, h.percentile_ms(99)) for w, h in merged.items() if h.count]
    # With one worker, the merged p99 is its own: nothing to single out.
    return max(p99s, key=lambda item: item[1]) if len(p99s) > 1 else None


class BoundWatch:
    """``generator_bound`` applied while a run goes on, over the window measured so far.

    Args:
        warmup_s: intervals starting before this are not judged (as in ``summarise``).
    """

    def __init__(self, warmup_s: float) -> None:
        self.warmup_s = warmup_s
        self.labels: dict[int, str] = {}
        """How to name each worker, once the engine knows where they run."""
        self.window: list[BoundInput] = []
        self.lag = LatencyHistogram()
        self.verdict: BoundVerdict | None = None
        """The first verdict reached, once reached."""

    def add(self, iv: BoundInput) -> BoundVerdict | None:
        """Judge the window with ``iv`` added; returns the verdict only the first time the
        generator is found bound (once ``LIVE_AFTER_S`` of window is measured)."""
        if self.verdict is not None or iv.t_s + 1e-9 < self.warmup_s:
            return None
        self.window.append(iv)
        self.lag.merge_encoded(iv.histogram_lag)
        if sum(w.duration_s for w in self.window) < LIVE_AFTER_S - 1e-6:
            return None
        self.verdict = generator_bound(self.window, self.lag, self.labels)
        return self.verdict
