"""Thresholds checked against stored runs: every run (each variant) against every threshold;
a run that measured nothing fails them all. ``lab run`` exits with code 1 when any
threshold failed. The thresholds themselves are parsed by ``lab.thresholds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lab.metrics import Metric
from lab.store import RunRecord
from lab.thresholds import Threshold


@dataclass(frozen=True)
class ThresholdResult:
    """One threshold checked against one run."""

    run_id: int
    variant: str
    threshold: Threshold
    actual: float | None
    """The run's figure in the metric's base unit; None when it was not measured."""
    passed: bool

    @property
    def metric(self) -> Metric:
        """The registry's metric the threshold checks."""
        return self.threshold.figure

    @property
    def unit(self) -> str:
        """The base unit of ``actual`` and the limit: ``ms``, ``req/s``, ``B``; "" for shares."""
        return self.metric.unit

    def describe(self) -> str:
        """``p95<200ms: 12.3 ms``, ``throughput>500: 35,210 req/s`` or ``… : not measured``."""
        return f"{self.threshold.expression}: {self.metric.text(self.actual)}"

    def as_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "variant": self.variant,
                "threshold": self.threshold.expression, "metric": self.threshold.metric,
                "op": self.threshold.op, "limit": self.threshold.limit, "unit": self.unit,
                "actual": self.actual, "passed": self.passed}


def evaluate(thresholds: Sequence[Threshold], runs: Sequence[RunRecord]) -> list[ThresholdResult]:
    """Check every threshold against every run, in run order."""
    out = []
    for run in runs:
        for t in thresholds:
            actual = t.value(run.summary) if run.summary is not None else None
            passed = actual is not None and t.check(actual)
            out.append(ThresholdResult(run.id, run.variant, t, actual, passed))
    return out
