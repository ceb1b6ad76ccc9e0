"""Per-stage figures of a staged run, with a Little's law check for each stage.

Little's law: the mean number of requests in the system L equals the throughput X times
the mean time a request spends in it W, ``L = X · W`` (J. D. C. Little, "A Proof for the
Queuing Formula: L = λW", Operations Research 9(3), 1961). The generator measures L
directly (its time-weighted mean of requests in flight, ``in_flight_mean``) and X and W
from completed requests, so a large disagreement points at a measurement problem, or at
a stage too short to reach a steady state (a queue still growing).

Which intervals a stage gets: runs are stored in whole intervals (1 s) while stage
boundaries need not fall on whole seconds (``--duration`` scales every stage, and a
burst may last 0.2 s). Each interval after the warm-up goes to the stage that covers
most of it (the earlier one on a tie), and the time it reaches into other stages is
reported (``outside_s``), so the rows' requests add up to the run's. A stage with no
interval of its own still gets a row, with its offered load and a ``note`` saying why
it has no figures (shorter than one interval, in the warm-up, ...).

The drain: requests still in flight when the schedule ends are awaited (up to their
deadline), and the worker reports them in its last interval, which so reaches past the
schedule's end (in the saturation experiment: [41 s, 46.7 s) for a schedule ending at
42 s, 4.7 s of a backlog being worked off). The time after the schedule's end is no
stage's: it is a span of its own, and an interval that lies more in it than in any
stage becomes a row of its own (``drain``); else the interval stays with the stage that
holds most of it, with its seconds past the end counted in ``outside_s`` (and
``drain_s``) like time in a neighbouring stage, so the table marks the row.

Offered load comes from the schedule, not from the rate the intervals report (that is
the rate at each interval's end, ~10 % high on a ramp): the arrivals (or VU-seconds)
scheduled in the seconds the measured figures cover, divided by those seconds, so both
describe the same time; for a stage in whole intervals on a linear ramp that is the mean
of its start and end level. No arrival is scheduled after the schedule's end: a row
that reaches into the drain offers less than the stage's rate, as much as was sent for
the seconds it measures (throughput above it is a backlog being served).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lab.load.histogram import merged
from lab.load.profile import LoadProfile
from lab.run_config import LoadSettings

LITTLE_TOLERANCE = 0.2
"""Relative difference between measured and X·W in-flight above which a stage is flagged."""

_EPS_S = 1e-6
"""Seconds below which two instants are the same (stage durations scaled by ``--duration``
carry float noise: 8/16 of 6 s came out as 3.0000000000000004)."""


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
    """One stage of a run, over the intervals assigned to it (see the module docstring)."""

    stage: int
    """Index of the stage (0-based)."""
    start_s: float
    end_s: float
    """The time the figures cover, seconds after the load began: from the start of the
    stage's first interval to the end of its last (the stage's own span when it has no
    interval)."""
    offered: float
    """Mean arrival rate scheduled (open model, req/s) or mean VUs scheduled (closed) over
    the same time as the figures: arrivals (VU-seconds) scheduled in it over its length,
    with none scheduled after the schedule's end."""
    throughput_rps: float | None
    """Successful requests per second (None: no interval)."""
    completed_rps: float | None
    """Completed attempts (ok + errors) per second: Little's X."""
    error_rate: float | None
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
    stage_start_s: float = 0.0
    stage_end_s: float = 0.0
    """The stage's own span in the schedule, seconds after the load began."""
    intervals: int = 0
    """How many intervals the figures come from."""
    outside_s: float = 0.0
    """Seconds of those intervals that lie in neighbouring stages (boundaries not on whole
    intervals) or after the schedule's end: the figures blend in that much of their load."""
    drain_s: float = 0.0
    """Of ``outside_s`` (or, for the drain row, of its own time), the seconds after the
    schedule's end, when no arrival is scheduled."""
    drain: bool = False
    """This row is not a stage but the drain: intervals lying mostly after the schedule's
    end (``stage`` is then the number of stages); its ``outside_s`` is the time it holds
    of the last stage."""
    note: str | None = None
    """Why the stage has no figures (no interval of its own), else None."""
    requests: int = 0
    """Completed attempts (ok + errors) in the row's intervals: the rows' add up to the
    run's measured window."""
    in_flight_first: float | None = None
    in_flight_last: float | None = None
    """Requests in flight (the generator's measured mean) in the interval just before the
    figures' time (their first when the run starts with them) and in their last: a queue
    that grows or drains across the stage (not a steady state) makes L and X·W differ by
    design."""

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

    @property
    def queue_change(self) -> tuple[float, float] | None:
        """``(first, last)`` in-flight when the queue grew or drained across the stage
        (by over `LITTLE_TOLERANCE` of the larger and by at least one request), else None.

        Over a window that starts or ends with a backlog, X·W counts only the requests
        that finished in it (with their time before it): a growing queue makes the
        measured in-flight larger than X·W, a draining one smaller, with no
        measurement problem. The table names this next to a ✗."""
        first, last = self.in_flight_first, self.in_flight_last
        if first is None or last is None:
            return None
        change = abs(last - first)
        return (first, last) if change >= 1.0 and change > LITTLE_TOLERANCE * max(first, last) else None


def schedule_of(load: LoadSettings | Mapping[str, Any], user_levels: Sequence[tuple[float, float]] = ()
                ) -> tuple[LoadProfile, list[tuple[float, float]]]:
    """The load profile a run was scheduled with, and each stage's span.

    Args:
        load: the run's ``[load]`` (``LoadSettings``, or the dict it reads:
            ``LoadSpec.model_dump()``): ``model``, ``vus`` or ``rate``, ``stages``,
            ``duration``.
        user_levels: ``(t_s, level)`` of every level a user set during the run, in time
            order (``lab.store.RunEventRow`` with reason ``user``): held from then on.

    Returns:
        The profile (total level, VUs or req/s) and ``(start_s, end_s)`` of each stage.
    """
    load = LoadSettings.of(load)
    base = load.vus if load.model == "closed" else load.rate
    stages = list(load.stages)
    profile = LoadProfile(stages, float(base or 0.0), load.duration_s or 0.0)
    spans, t = [], 0.0
    for dur, _target in stages or [(profile.total_s, 0.0)]:
        # Rounded to the ns: scaled durations add up to 3.0000000000000004 and the like.
        spans.append((round(t, 9), round(t + dur, 9)))
        t += dur
    for t_s, level in user_levels:
        profile.override(t_s, level)
    return profile, spans


def scheduled_mean(profile: LoadProfile, start_s: float, end_s: float) -> float:
    """Mean scheduled level (req/s or VUs) over ``[start_s, end_s)``, clipped to the
    profile; the last level when nothing of it is left."""
    start, end = max(0.0, start_s), min(end_s, profile.total_s)
    if end - start <= _EPS_S:
        return profile.level_at(start_s)
    return (scheduled_count(profile, end) - scheduled_count(profile, start)) / (end - start)


def scheduled_count(profile: LoadProfile, t: float) -> float:
    """∫ level dt from 0 to ``t``: arrivals due (open model) or VU-seconds (closed)."""
    for seg in profile.segments:
        if t < seg.t1:
            return seg.count_at(max(t, seg.t0))
    last = profile.segments[-1]
    return last.count_at(last.t1)


def assign_intervals(intervals: Sequence[_Interval], spans: Sequence[tuple[float, float]],
                     warmup_s: float = 0.0) -> list[tuple[int, _Interval, float]]:
    """Give each interval after the warm-up to the span covering most of it.

    Time after the last stage (the run's drain) is a span of its own, index
    ``len(spans)``. On a tie the earlier span gets the interval; a zero-length interval
    goes to the span its instant lies in. Only intervals starting in the warm-up are left
    out, so the requests of the rows add up to those of the run's measured window.

    Returns:
        ``(stage, interval, outside_s)`` in time order: ``stage`` is ``len(spans)`` for
        the drain; ``outside_s`` is how much of the interval lies in other spans.
    """
    out = []
    with_drain = [*spans, (spans[-1][1], math.inf)] if spans else []
    for iv in intervals:
        if iv.t_s + 1e-9 < warmup_s or not with_drain:
            continue
        a, b = iv.t_s, iv.t_s + max(iv.duration_s, 0.0)
        if b - a <= _EPS_S:
            k = next((i for i, (_start, end) in enumerate(with_drain) if a < end - _EPS_S),
                     len(with_drain) - 1)
            out.append((k, iv, 0.0))
            continue
        # Rounded to the ns: a boundary at 3.0000000000000004 must not win a tie.
        overlaps = [round(max(0.0, min(b, end) - max(a, start)), 9) for start, end in with_drain]
        k = max(range(len(with_drain)), key=overlaps.__getitem__)
        outside = (b - a) - overlaps[k]
        out.append((k, iv, outside if outside > _EPS_S else 0.0))
    return out


def stage_figures(intervals: Sequence[_Interval], load: LoadSettings | Mapping[str, Any],
                  target_samples: Sequence[tuple[float, str, float]] = (),
                  user_levels: Sequence[tuple[float, float]] = ()) -> list[StageFigures]:
    """Summarise a run's intervals stage by stage.

    Args:
        intervals: the run's stored intervals (``lab.store.IntervalRow``), time order.
        load: the run's ``[load]`` (``LoadSettings`` or its dict: ``model``, ``warmup``, ``stages``, ...);
            ``model`` says what ``offered`` means, intervals starting in the ``warmup``
            are left out.
        target_samples: the target's gauge readings ``(t_s, name, value)``; its
            ``in_flight`` gauge, when present, is averaged per stage.
        user_levels: levels a user set during the run (see ``schedule_of``).

    Returns:
        One ``StageFigures`` per stage, in stage order; a stage with no interval of its
        own has None figures and a ``note``. Then, when intervals lie mostly after the
        schedule's end, one more row with ``drain`` set: requests answered after it.
    """
    load = LoadSettings.of(load)
    profile, spans = schedule_of(load, user_levels)
    warmup_s = load.warmup_s
    groups: dict[int, list[tuple[_Interval, float]]] = {}
    for k, iv, outside in assign_intervals(intervals, spans, warmup_s):
        groups.setdefault(k, []).append((iv, outside))
    lengths = sorted(iv.duration_s for iv in intervals[:-1]) or [1.0]
    interval_s = lengths[len(lengths) // 2]
    run_end = max((iv.t_s + iv.duration_s for iv in intervals), default=0.0)
    position = {id(iv): i for i, iv in enumerate(intervals)}
    out = []
    schedule_end = spans[-1][1] if spans else 0.0
    drain = len(spans)
    for k, (stage_start, stage_end) in enumerate([*spans, (schedule_end, run_end)]):
        if k in groups:
            ivs = [iv for iv, _ in groups[k]]
            i = position[id(ivs[0])]
            edges = (getattr(intervals[max(i - 1, 0)], "in_flight_mean", None),
                     getattr(ivs[-1], "in_flight_mean", None))
            out.append(_figures(k, groups[k], profile, (stage_start, stage_end), target_samples,
                                edges, schedule_end, is_drain=k == drain))
        elif k < drain:
            note = _why_empty(stage_start, stage_end, warmup_s, interval_s, run_end,
                              drained=k == drain - 1 and drain in groups)
            out.append(StageFigures(
                stage=k, start_s=stage_start, end_s=stage_end,
                offered=scheduled_mean(profile, stage_start, stage_end),
                throughput_rps=None, completed_rps=None, error_rate=None, dropped=0,
                p50_ms=None, p99_ms=None, mean_ms=None, in_flight_measured=None,
                in_flight_little=None, stage_start_s=stage_start, stage_end_s=stage_end,
                note=note))
    return out


def _figures(stage: int, group: Sequence[tuple[_Interval, float]], profile: LoadProfile,
             span: tuple[float, float], target_samples: Sequence[tuple[float, str, float]],
             edges: tuple[float | None, float | None], schedule_end: float,
             is_drain: bool = False) -> StageFigures:
    ivs = [iv for iv, _ in group]
    span_s = sum(iv.duration_s for iv in ivs)
    ok = sum(iv.ok for iv in ivs)
    completed = sum(iv.requests for iv in ivs)
    errors = sum(iv.errors for iv in ivs)
    ok_hist = merged([iv.histogram for iv in ivs if iv.histogram])
    all_hist = merged([iv.histogram_all for iv in ivs if iv.histogram_all])
    # Offered over the same seconds as the measured figures: what the schedule sent in
    # them, over all of them (nothing is scheduled in the drain after its end).
    level_s = drain_s = 0.0
    for iv in ivs:
        a, end = iv.t_s, iv.t_s + iv.duration_s
        b = min(end, profile.total_s)
        if b > a:
            level_s += scheduled_count(profile, b) - scheduled_count(profile, a)
        drain_s += max(0.0, end - max(a, schedule_end))
    offered = level_s / span_s if span_s > 0 else 0.0
    measured = [(iv.in_flight_mean, iv.duration_s) for iv in ivs
                if getattr(iv, "in_flight_mean", None) is not None]
    in_flight = (sum(v * d for v, d in measured) / sum(d for _, d in measured)
                 if measured else None)
    start, end = ivs[0].t_s, ivs[-1].t_s + ivs[-1].duration_s
    inside = [v for t, name, v in target_samples if name == "in_flight" and start < t <= end]
    x = completed / span_s
    w_ms = all_hist.mean_ms() if all_hist.count else None
    return StageFigures(
        stage=stage,
        start_s=start,
        end_s=end,
        offered=offered,
        throughput_rps=ok / span_s,
        completed_rps=x,
        error_rate=errors / completed if completed else 0.0,
        dropped=sum(iv.dropped for iv in ivs),
        p50_ms=ok_hist.percentile_ms(50) if ok_hist.count else None,
        p99_ms=ok_hist.percentile_ms(99) if ok_hist.count else None,
        mean_ms=w_ms,
        in_flight_measured=in_flight,
        in_flight_little=x * w_ms / 1000.0 if w_ms is not None else None,
        in_flight_target=sum(inside) / len(inside) if inside else None,
        stage_start_s=span[0],
        stage_end_s=span[1],
        intervals=len(ivs),
        outside_s=sum(outside for _, outside in group),
        drain_s=drain_s if drain_s > _EPS_S else 0.0,
        drain=is_drain,
        in_flight_first=edges[0],
        in_flight_last=edges[1],
        requests=completed,
    )


def _why_empty(start: float, end: float, warmup_s: float, interval_s: float, run_end: float,
               drained: bool = False) -> str:
    """Why a stage got no interval, in a few words for the table."""
    if end <= warmup_s + _EPS_S:
        return "in the warm-up"
    if start >= run_end - _EPS_S:
        return "the run ended before it"
    if end - start < interval_s - _EPS_S:
        return f"{_secs(end - start)} long: shorter than one {_secs(interval_s)} interval"
    if drained:
        return "its interval lies mostly in the drain (next row)"
    if start < warmup_s:
        return f"only {_secs(end - warmup_s)} after the warm-up"
    return f"no {_secs(interval_s)} interval lies more in it than in its neighbours"


def _secs(value: float) -> str:
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"
