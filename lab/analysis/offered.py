"""Whether a run achieved the load it was asked to offer.

An open-model run offers the arrivals its schedule holds; when the target cannot keep up
(or the generator cannot send on time), fewer requests are served than arrive, and the
run's figures describe a saturated system. A closed-model run paced by ``max_rps`` (what
k6 and Gatling call pacing) intends that rate; when its VUs cannot keep it, each VU was
waiting for an answer instead of sending, so latency under-reports what clients arriving
at that rate would see (coordinated omission, G. Tene, "How NOT to Measure Latency",
2013). Either way the run is flagged: achieved below `ACHIEVED_SHARE` of offered.

What counts, over the seconds compared (the measured window's intervals that lie within
the schedule, at least `IN_SCHEDULE_SHARE` of each; the drain, when requests still in
flight are answered after the schedule's end, is left out, else its backlog and its
seconds with no arrivals would dilute both figures):

- offered: the arrivals scheduled in those seconds per second of the schedule (open model:
  the schedule's integral, levels a user set during the run included), or ``max_rps``
  (closed model);
- achieved: goodput, successful requests completed in those seconds per second. Errors
  are not achieved load (a target answering 503 or timing out did not serve the offered
  load), nor are dropped requests (never sent).

A closed model without ``max_rps`` has no intended rate: a VU that thinks ``think_time``
between requests sends at VUs / (think_time + latency), which depends on the latency being
measured; VUs / think_time is only an upper bound a zero-latency target would reach, and
comparing against it would flag every healthy run whose latency is a tenth of its think
time. Such runs, and a ``max_rps`` that the think time alone keeps out of reach
(VUs / think_time below it), get no offered figure and no flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lab.analysis.stages import schedule_of, scheduled_count, scheduled_mean
from lab.run_config import LoadSettings

ACHIEVED_SHARE = 0.9
"""A run whose achieved rate is below this share of its offered rate is flagged."""

IN_SCHEDULE_SHARE = 0.9
"""An interval is compared when at least this share of it lies before the schedule's end: the
last one reaches a few ms past it (the last answers), which dilutes nothing; one holding a
backlog answered after the end (the drain) is left out."""

_EPS_S = 1e-6


class _Interval(Protocol):
    t_s: float
    duration_s: float
    ok: int
    dropped: int


@dataclass(frozen=True)
class OfferedLoad:
    """Offered against achieved load over a run's measured window (see the module)."""

    offered_rps: float
    """Arrivals scheduled (open model) or ``max_rps`` (paced closed model), per second."""
    achieved_rps: float
    """Successful requests completed per second over the same seconds."""
    seconds: float
    """The seconds compared: the measured window without the drain."""
    dropped: int
    """Open model: arrivals not sent in those seconds (in-flight cap reached)."""
    model: str
    """``open`` or ``closed``."""

    @property
    def share(self) -> float:
        """achieved / offered (1.0 when nothing was offered)."""
        return self.achieved_rps / self.offered_rps if self.offered_rps > 0 else 1.0

    @property
    def not_achieved(self) -> bool:
        """Achieved below `ACHIEVED_SHARE` of offered."""
        return self.share < ACHIEVED_SHARE

    @property
    def reason(self) -> str | None:
        """One line with the figures when not achieved, else None."""
        if not self.not_achieved:
            return None
        figures = (f"{self.achieved_rps:,.1f} of {self.offered_rps:,.1f} req/s "
                   f"({self.share:.0%}) over {self.seconds:.1f} s")
        if self.model == "open":
            dropped = f"; {self.dropped:,} dropped" if self.dropped else ""
            return f"served {figures}: the target (or the generator) could not keep up{dropped}"
        return (f"paced at {self.offered_rps:,.1f} req/s, achieved {figures}: the VUs waited "
                f"for answers, so latency under-reports what clients at that rate would see "
                f"(coordinated omission)")


def offered_load(intervals: Sequence[_Interval], load: LoadSettings | Mapping[str, Any], warmup_s: float,
                 user_levels: Sequence[tuple[float, float]] = ()) -> OfferedLoad | None:
    """Offered against achieved load of a run (see the module for what counts).

    Args:
        intervals: the run's merged intervals, time order (``IntervalCounts`` or stored
            ``IntervalRow``).
        load: the run's ``[load]`` (``LoadSettings``, or the dict it reads:
            ``LoadSpec.model_dump()``, durations in seconds).
        warmup_s: intervals starting before this are not measured (as in ``summarise``).
        user_levels: ``(t_s, level)`` a user set during the run (see ``schedule_of``).

    Returns:
        The figures, or None when the run has no intended rate (a closed model without a
        reachable ``max_rps``) or no measured interval.
    """
    window = [iv for iv in intervals if iv.t_s + 1e-9 >= warmup_s and iv.duration_s > 0]
    if not window:
        return None
    load = LoadSettings.of(load)
    model = load.model
    profile, _spans = schedule_of(load, user_levels)
    during = [iv for iv in window
              if min(iv.t_s + iv.duration_s, profile.total_s) - iv.t_s
              >= IN_SCHEDULE_SHARE * iv.duration_s - _EPS_S] or window
    seconds = sum(iv.duration_s for iv in during)
    if seconds <= 0:
        return None
    if model == "open":
        # Per second of the schedule: the last interval's few ms past its end hold no arrivals.
        scheduled_s = sum(max(0.0, min(iv.t_s + iv.duration_s, profile.total_s) - iv.t_s)
                          for iv in during)
        arrivals = sum(scheduled_count(profile, min(iv.t_s + iv.duration_s, profile.total_s))
                       - scheduled_count(profile, min(iv.t_s, profile.total_s)) for iv in during)
        offered = arrivals / scheduled_s if scheduled_s > 0 else 0.0
    else:
        max_rps = load.max_rps
        if not max_rps:
            return None
        think_s = load.think_time_s
        vus = scheduled_mean(profile, during[0].t_s, during[-1].t_s + during[-1].duration_s)
        if think_s > 0 and vus / think_s < float(max_rps):
            return None  # out of reach even at zero latency: max_rps is a cap, not a pace
        offered = float(max_rps)
    return OfferedLoad(offered_rps=offered, achieved_rps=sum(iv.ok for iv in during) / seconds,
                       seconds=seconds, dropped=sum(iv.dropped for iv in during),
                       model=model)
