"""Noise-aware comparison: is a change larger than the measured spread?

A group is one run, or the repetitions of one variant (``lab run --repeat N``). Its
range for a figure is, with several runs, their minimum to maximum around the median;
with one run, the run's figure ± two standard errors of its one-second intervals
(the per-interval values' standard deviation / √intervals), a 95 % band when the
intervals are roughly independent, cut at the values the figure can take (a latency is
never below 0 ms, a share never above 100 %). A change is flagged only when the two ranges do not
overlap; otherwise it is "within noise".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lab.metrics import NOISE_FIGURES, Metric

if TYPE_CHECKING:
    from lab.store import IntervalRow, RunRecord

Verdict = Literal["better", "worse", "within noise", "not measured"]

FIGURES = NOISE_FIGURES
"""The figures compared, from the registry (``lab.metrics``): those with a noise rule."""


@dataclass(frozen=True)
class Spread:
    """A figure of a group: its median and the range noise allows."""

    median: float
    low: float
    high: float
    runs: int
    basis: Literal["runs", "intervals"]
    """``runs``: min–max over repetitions; ``intervals``: ± 2 standard errors of one run."""


@dataclass(frozen=True)
class Change:
    """One figure, baseline against candidate."""

    figure: str
    unit: str
    baseline: Spread | None
    candidate: Spread | None
    change_pct: float | None
    verdict: Verdict

    def as_dict(self) -> dict[str, object]:
        def spread(s: Spread | None) -> dict[str, object] | None:
            return None if s is None else {"median": s.median, "low": s.low, "high": s.high,
                                           "runs": s.runs, "basis": s.basis}
        return {"figure": self.figure, "unit": self.unit, "baseline": spread(self.baseline),
                "candidate": spread(self.candidate), "change_pct": self.change_pct,
                "verdict": self.verdict}


def _window(run: RunRecord, intervals: Sequence[IntervalRow]) -> list[IntervalRow]:
    start = math.ceil(run.settings.load.warmup_s - 1e-9)
    return [iv for iv in intervals if iv.t_s + 1e-9 >= start and iv.duration_s > 0]


def spread(figure: Metric, runs: Sequence[RunRecord],
           intervals: dict[int, list[IntervalRow]]) -> Spread | None:
    """The figure's median and noise range over a group of runs (None: not measured).

    Args:
        figure: one of ``lab.metrics.NOISE_FIGURES`` (it has a ``per_interval`` rule).
    """
    assert figure.per_interval is not None, figure.name
    of_interval = figure.per_interval
    values = [v for r in runs if r.summary is not None
              for v in [figure.get(r.summary)] if v is not None]
    if not values:
        return None
    if len(values) >= 2:
        return Spread(statistics.median(values), min(values), max(values), len(values), "runs")
    run = next(r for r in runs if r.summary is not None and figure.get(r.summary) is not None)
    per_interval = [v for iv in _window(run, intervals.get(run.id, []))
                    for v in [of_interval(iv)] if v is not None]
    half = 0.0
    if len(per_interval) >= 2:
        half = 2 * statistics.stdev(per_interval) / math.sqrt(len(per_interval))
    return Spread(values[0], figure.clamp(values[0] - half), figure.clamp(values[0] + half), 1, "intervals")


def compare(baseline: Sequence[RunRecord], candidate: Sequence[RunRecord],
            intervals: dict[int, list[IntervalRow]]) -> list[Change]:
    """Each figure of the candidate group against the baseline group, flagged only when
    the ranges do not overlap.

    Args:
        baseline: the baseline run and its repetitions.
        candidate: the run (or repetitions) compared with it.
        intervals: the runs' intervals by run id (used for single-run groups).
    """
    out = []
    for fig in NOISE_FIGURES:
        base = spread(fig, baseline, intervals)
        cand = spread(fig, candidate, intervals)
        if base is None or cand is None:
            out.append(Change(fig.name, fig.unit, base, cand, None, "not measured"))
            continue
        change = (cand.median - base.median) / base.median * 100 if base.median else None
        verdict: Verdict = "within noise"
        if cand.low > base.high or cand.high < base.low:
            up = cand.median > base.median
            verdict = "better" if up == fig.higher_is_better else "worse"
        out.append(Change(fig.name, fig.unit, base, cand, change, verdict))
    return out
