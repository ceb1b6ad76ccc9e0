"""The generator-bound rule: one rule for the live warning and the stored verdict.

A run is generator-bound when its load generator ran out of CPU or fell behind its own
schedule, so its figures describe the generator rather than the target. The rule reads
only what the workers report in each interval (their own CPU and their event-loop and
send lag), so the engine can apply it while the run goes on (``BoundWatch``, which emits
``lab.events.GeneratorBound``) and the summary applies it to the whole measured window
(``generator_bound``), with the same thresholds and the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    @property
    def reason(self) -> str:
        """One line, as stored in ``summaries.generator_bound_reason`` and every report,
        e.g. ``generator event-loop lag p99 12.4 ms > 10 ms``."""
        reasons = []
        if self.busy_s is not None:
            reasons.append(f"a generator worker stayed at >= {GENERATOR_BUSY_PERCENT:g}% CPU for "
                           f"{self.busy_s:.0f}s")
        if self.lag_p99_ms is not None:
            reasons.append(f"generator event-loop lag p99 {self.lag_p99_ms:.1f} ms "
                           f"> {LOOP_LAG_LIMIT_MS:g} ms")
        return "; ".join(reasons)

    @property
    def headline(self) -> str:
        """The reason as a short banner, e.g. ``generator ≥ 90% CPU for 3 s``."""
        parts = []
        if self.busy_s is not None:
            parts.append(f"generator ≥ {GENERATOR_BUSY_PERCENT:.0f}% CPU for {self.busy_s:.0f} s")
        if self.lag_p99_ms is not None:
            parts.append(f"generator loop lag p99 {self.lag_p99_ms:.1f} ms > {LOOP_LAG_LIMIT_MS:g} ms")
        return "; ".join(parts)


def generator_bound(window: Sequence[BoundInput], lag: LatencyHistogram | None = None) -> BoundVerdict | None:
    """The verdict over a window of merged intervals, or None when the generator kept up.

    Generator-bound: some worker stayed at or above 90 % CPU for at least 3 s in a row,
    or the workers' lag p99 (their loop-lag probe and, open model, send lag, merged over
    the window) exceeded 10 ms.

    Args:
        window: the intervals, in time order.
        lag: their lag histograms already merged (the summary has it); merged here when None.
    """
    if lag is None:
        lag = LatencyHistogram()
        for iv in window:
            lag.merge_encoded(iv.histogram_lag)
    streak = longest = 0.0
    for iv in window:
        busy = iv.generator_cpu_percent is not None and iv.generator_cpu_percent >= GENERATOR_BUSY_PERCENT
        streak = streak + iv.duration_s if busy else 0.0
        longest = max(longest, streak)
    busy_s = longest if longest >= GENERATOR_BUSY_FOR_S - 1e-6 else None
    lag_p99 = lag.percentile_ms(99) if lag.count else None
    lag_over = lag_p99 if lag_p99 is not None and lag_p99 > LOOP_LAG_LIMIT_MS else None
    if busy_s is None and lag_over is None:
        return None
    return BoundVerdict(busy_s, lag_over)


class BoundWatch:
    """``generator_bound`` applied while a run goes on, over the window measured so far.

    Args:
        warmup_s: intervals starting before this are not judged (as in ``summarise``).
    """

    def __init__(self, warmup_s: float) -> None:
        self.warmup_s = warmup_s
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
        self.verdict = generator_bound(self.window, self.lag)
        return self.verdict
