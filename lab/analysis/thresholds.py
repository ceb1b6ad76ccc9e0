"""Thresholds checked against stored runs: every run (each variant) against every threshold;
a run that measured nothing fails them all. ``lab run`` exits with code 1 when any
threshold failed. The thresholds themselves are parsed by ``lab.thresholds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lab.store import RunRecord
from lab.thresholds import Kind, Threshold, base_unit, metric_value


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
    def unit(self) -> str:
        return base_unit(self.threshold.kind)

    def describe(self) -> str:
        """``p95<200ms: 12.3 ms`` or ``… : not measured``."""
        shown = "not measured" if self.actual is None else figure_text(self.threshold.kind, self.actual)
        return f"{self.threshold.expression}: {shown}"

    def as_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "variant": self.variant,
                "threshold": self.threshold.expression, "metric": self.threshold.metric,
                "op": self.threshold.op, "limit": self.threshold.limit, "unit": self.unit,
                "actual": self.actual, "passed": self.passed}


def figure_text(kind: Kind, value: float) -> str:
    """A threshold's figure (a run's, or the limit) in its kind's base unit as a person
    writes it, never in scientific notation: ``35,210 req/s``, ``128.4 req/s``,
    ``12.34 ms``, ``0.5 %`` (a ratio), ``5,000`` (a count), ``1,234,567,890 B``.

    Four significant digits (three for a percentage), but a number with more whole
    digits stays whole (``35,210``, not ``35,200``); trailing zeros go (``0.5 %``).
    """
    unit, digits = base_unit(kind), 4
    if kind == "ratio":
        value, unit, digits = value * 100, "%", 3
    size = abs(value)
    decimals = 0 if size == 0 else max(0, digits - 1 - math.floor(math.log10(size)))
    number = f"{value:,.{decimals}f}"
    if decimals:
        number = number.rstrip("0").rstrip(".")
    return f"{number} {unit}".rstrip()


def evaluate(thresholds: Sequence[Threshold], runs: Sequence[RunRecord]) -> list[ThresholdResult]:
    """Check every threshold against every run, in run order."""
    out = []
    for run in runs:
        for t in thresholds:
            actual = metric_value(t.metric, run.summary) if run.summary is not None else None
            passed = actual is not None and t.check(actual)
            out.append(ThresholdResult(run.id, run.variant, t, actual, passed))
    return out
