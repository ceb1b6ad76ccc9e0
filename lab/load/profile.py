"""Load profiles: the VUs or arrival rate over time, from stages ramped linearly.

A profile is a list of linear segments. For the open model it also answers "when is the
n-th arrival due?" by inverting the cumulative arrival count N(t) = ∫ rate(t) dt, so a
ramp from 0 req/s schedules its first arrivals exactly where the ramp puts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    """``level`` goes linearly from ``start_level`` to ``end_level`` over [t0, t1) seconds."""

    t0: float
    t1: float
    start_level: float
    end_level: float
    count0: float = 0.0
    """Arrivals due before t0 (open model)."""

    def level_at(self, t: float) -> float:
        if self.t1 <= self.t0:
            return self.end_level
        frac = (t - self.t0) / (self.t1 - self.t0)
        return self.start_level + (self.end_level - self.start_level) * frac

    def count_at(self, t: float) -> float:
        u = t - self.t0
        slope = (self.end_level - self.start_level) / (self.t1 - self.t0) if self.t1 > self.t0 else 0.0
        return self.count0 + self.start_level * u + slope * u * u / 2

    def time_of_count(self, count: float) -> float | None:
        """When the cumulative count reaches ``count`` within this segment, else None."""
        dc = count - self.count0
        a = self.start_level
        slope = (self.end_level - self.start_level) / (self.t1 - self.t0) if self.t1 > self.t0 else 0.0
        if abs(slope) < 1e-12:
            if a <= 0:
                return None
            u = dc / a
        else:
            disc = a * a + 2 * slope * dc
            if disc < 0:
                return None
            u = (-a + math.sqrt(disc)) / slope
        if u < -1e-12 or self.t0 + u > self.t1 + 1e-9:
            return None
        return self.t0 + max(u, 0.0)


class LoadProfile:
    """VUs or rate over time for one run.

    Args:
        stages: ``(duration_s, target_level)`` pairs; ramps start at ``start_level``.
        start_level: the level at t=0 (``vus`` / ``rate`` when given, else 0).
        duration_s: the run's length when there are no stages (constant level).
        scale: a factor applied to every level (a worker's share of the total).
    """

    def __init__(
        self,
        stages: list[tuple[float, float]],
        start_level: float,
        duration_s: float,
        scale: float = 1.0,
    ) -> None:
        segs: list[Segment] = []
        t = 0.0
        level = start_level * scale
        count = 0.0
        if not stages:
            stages = [(duration_s, start_level)]
            level = start_level * scale
        for dur, target in stages:
            seg = Segment(t, t + dur, level, target * scale, count)
            segs.append(seg)
            count = seg.count_at(seg.t1)
            t += dur
            level = target * scale
        self.segments = segs
        self.total_s = t
        self._scale = scale
        self.overridden = False
        self.version = 0
        """Bumped by every ``override``: whoever cached a segment must look again."""

    def stage_at(self, t: float) -> int:
        for i, seg in enumerate(self.segments):
            if t < seg.t1:
                return i
        return len(self.segments) - 1

    def level_at(self, t: float) -> float:
        """The level at ``t`` seconds (held at the last value after the end)."""
        for seg in self.segments:
            if t < seg.t1:
                return seg.level_at(max(t, seg.t0))
        return self.segments[-1].end_level

    def time_of_arrival(self, n: float) -> float | None:
        """Seconds after start at which arrival number ``n`` (0-based, may be fractional)
        is due; None when the profile ends before it."""
        target = n + 1e-9
        for seg in self.segments:
            end_count = seg.count_at(seg.t1)
            if target <= end_count + 1e-9:
                found = seg.time_of_count(n)
                if found is not None:
                    return found
        return None

    def override(self, t: float, level_total: float) -> None:
        """Hold ``level_total`` (before scaling) from ``t`` to the end of the run."""
        kept: list[Segment] = []
        for seg in self.segments:
            if seg.t1 <= t:
                kept.append(seg)
            elif seg.t0 < t:
                cut = Segment(seg.t0, t, seg.start_level, seg.level_at(t), seg.count0)
                kept.append(cut)
        count = kept[-1].count_at(kept[-1].t1) if kept else 0.0
        start = kept[-1].t1 if kept else 0.0
        level = level_total * self._scale
        if self.total_s > start:
            kept.append(Segment(start, self.total_s, level, level, count))
        self.segments = kept or [Segment(0.0, self.total_s, level, level, 0.0)]
        self.overridden = True
        self.version += 1


def split_evenly(total: int, index: int, parts: int) -> int:
    """The share of ``total`` (VUs) for part ``index`` of ``parts``: shares differ by at
    most one and add up to ``total`` exactly."""
    return total // parts + (1 if index < total % parts else 0)
