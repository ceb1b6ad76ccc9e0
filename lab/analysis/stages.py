"""Per-stage figures of a staged run, with a Little's law check for each stage.

Little's law: the mean number of requests in the system L equals the throughput X times
the mean time a request spends in it W, ``L = X · W`` (J. D. C. Little, "A Proof for the
Queuing Formula: L = λW", Operations Research 9(3), 1961). The generator measures L
directly (its time-weighted mean of requests in flight, ``in_flight_mean``) and X and W
from completed requests, so a large disagreement points at a measurement problem, or at
a stage too short to reach a steady state (a queue still growing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lab.load.histogram import merged

LITTLE_TOLERANCE = 0.2
"""Relative difference between measured and X·W in-flight above which a stage is flagged."""


class _Interval(Protocol):
    t_s: float
    duration_s: float
    requests: int
    ok: int
    errors: int
    dropped: int
    target_rate: float
    active_vus: int
    stage: int
    histogram: bytes
    histogram_all: bytes
    in_flight_mean: float | None


@dataclass(frozen=True)
class StageFigures:
    """One stage of a run, over the whole intervals that ended in it."""

    stage: int
    """Index of the stage (0-based)."""
    start_s: float
    end_s: float
    """Seconds after the load began."""
    offered: float
    """Mean arrival rate asked for (open model, req/s) or mean active VUs (closed)."""
    throughput_rps: float
    """Successful requests per second."""
    completed_rps: float
    """Completed attempts (ok + errors) per second: Little's X."""
    error_rate: float
    dropped: int
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    """Mean latency of every completed attempt, ms: Little's W."""
    in_flight_measured: float | None
    """Time-weighted mean requests in flight, measured by the generator (Little's L)."""
    in_flight_little: float | None
    """X · W: the in-flight Little's law predicts from throughput and latency."""
    in_flight_target: float | None = None
    """Mean of the target's own ``in_flight`` gauge over the stage, when it reports one
    (requests inside the target: excludes time on the wire and in the generator)."""

    @property
    def little_error(self) -> float | None:
        """(measured − X·W) / X·W, with the generator's measurement (else the target's),
        or None when either is missing or X·W is 0."""
        measured = self.in_flight_measured if self.in_flight_measured is not None else self.in_flight_target
        if measured is None or not self.in_flight_little:
            return None
        return (measured - self.in_flight_little) / self.in_flight_little

    @property
    def little_ok(self) -> bool | None:
        """Whether measured and predicted in-flight agree within `LITTLE_TOLERANCE`."""
        error = self.little_error
        return None if error is None else abs(error) <= LITTLE_TOLERANCE


def stage_figures(intervals: Sequence[_Interval], model: str, warmup_s: float = 0.0,
                  target_samples: Sequence[tuple[float, str, float]] = ()) -> list[StageFigures]:
    """Group a run's intervals by stage and summarise each group.

    Args:
        intervals: the run's stored intervals (``lab.store.IntervalRow``), time order.
        model: ``open`` or ``closed`` (what ``offered`` means).
        warmup_s: intervals starting before this are left out.
        target_samples: the target's gauge readings ``(t_s, name, value)``; its
            ``in_flight`` gauge, when present, is averaged per stage.

    Returns:
        One ``StageFigures`` per stage that has intervals, in stage order.
    """
    groups: dict[int, list[_Interval]] = {}
    for iv in intervals:
        if iv.t_s + 1e-9 < warmup_s or iv.duration_s <= 0:
            continue
        groups.setdefault(iv.stage, []).append(iv)
    out = []
    for stage, ivs in sorted(groups.items()):
        span = sum(iv.duration_s for iv in ivs)
        ok = sum(iv.ok for iv in ivs)
        completed = sum(iv.requests for iv in ivs)
        errors = sum(iv.errors for iv in ivs)
        ok_hist = merged([iv.histogram for iv in ivs if iv.histogram])
        all_hist = merged([iv.histogram_all for iv in ivs if iv.histogram_all])
        offered_values = [iv.target_rate if model == "open" else float(iv.active_vus) for iv in ivs]
        measured = [(iv.in_flight_mean, iv.duration_s) for iv in ivs
                    if getattr(iv, "in_flight_mean", None) is not None]
        in_flight = (sum(v * d for v, d in measured) / sum(d for _, d in measured)
                     if measured else None)
        start, end = ivs[0].t_s, ivs[-1].t_s + ivs[-1].duration_s
        inside = [v for t, name, v in target_samples if name == "in_flight" and start < t <= end]
        x = completed / span if span else 0.0
        w_ms = all_hist.mean_ms() if all_hist.count else None
        out.append(StageFigures(
            stage=stage,
            start_s=ivs[0].t_s,
            end_s=ivs[-1].t_s + ivs[-1].duration_s,
            offered=sum(offered_values) / len(offered_values),
            throughput_rps=ok / span if span else 0.0,
            completed_rps=x,
            error_rate=errors / completed if completed else 0.0,
            dropped=sum(iv.dropped for iv in ivs),
            p50_ms=ok_hist.percentile_ms(50) if ok_hist.count else None,
            p99_ms=ok_hist.percentile_ms(99) if ok_hist.count else None,
            mean_ms=w_ms,
            in_flight_measured=in_flight,
            in_flight_little=x * w_ms / 1000.0 if w_ms is not None else None,
            in_flight_target=sum(inside) / len(inside) if inside else None,
        ))
    return out
