"""Seconds above a latency objective: how long a run broke its SLO, and how long it took
to recover once it did.

A second (one interval) is above the objective when its p99 of successful requests is
above ``slo_p99_ms``, or when requests ended in it and none succeeded (a second of only
errors or timeouts meets no latency objective). Seconds with no request at all (an idle
gap) are neither. Only the measured window counts (after the warm-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class _Interval(Protocol):
    @property
    def t_s(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def ok(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def p99_ms(self) -> float | None: ...


@dataclass(frozen=True)
class SloFigures:
    """A run against its latency objective."""

    slo_p99_ms: float
    seconds_above: float
    """Seconds of the measured window whose p99 was above the objective."""
    longest_above_s: float
    """The longest stretch of consecutive seconds above it: from the first second over the
    objective to the first second back under it (the time to recover from an overload)."""
    stretches: int
    """How many separate stretches above it there were."""
    seconds_measured: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def slo_figures(intervals: Sequence[_Interval], slo_p99_ms: float, warmup_s: float) -> SloFigures:
    """The seconds of ``intervals`` (time order) at or after ``warmup_s`` above ``slo_p99_ms``."""
    above = 0.0
    longest = 0.0
    current = 0.0
    stretches = 0
    measured = 0.0
    for iv in intervals:
        if iv.t_s + 1e-9 < warmup_s:
            continue
        if iv.ok + iv.errors == 0:
            continue  # idle: says nothing of the objective
        measured += iv.duration_s
        over = iv.ok == 0 or (iv.p99_ms is not None and iv.p99_ms > slo_p99_ms)
        if over:
            if current == 0.0:
                stretches += 1
            current += iv.duration_s
            above += iv.duration_s
            longest = max(longest, current)
        else:
            current = 0.0
    return SloFigures(slo_p99_ms, above, longest, stretches, measured)
