"""Pass/fail thresholds on a run's summary: ``p95<200ms``, ``error_rate<1%``,
``throughput>500``.

A threshold is ``METRIC OP VALUE[UNIT]`` with OP one of ``<``, ``<=``, ``>``, ``>=``.
Latencies take ``us``, ``ms`` (the default) or ``s``; ratios take ``%`` or a fraction;
memory takes ``B``, ``KB``/``KiB``, ``MB``/``MiB``, ``GB``/``GiB``; rates are req/s.
This module parses them (the experiment file's ``[thresholds]`` are checked as it loads);
``lab.analysis.thresholds`` checks them against stored runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.metrics import Kind, Metric, by_threshold_name

if TYPE_CHECKING:
    from lab.figures import Summary

_UNITS: dict[Kind, dict[str, float]] = {
    "latency": {"": 1.0, "ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0},
    "ratio": {"": 1.0, "%": 0.01},
    "rate": {"": 1.0, "rps": 1.0, "/s": 1.0, "req/s": 1.0},
    "count": {"": 1.0},
    "cpu": {"": 1.0, "s": 1.0},
    "bytes": {"": 1.0, "b": 1.0, "kb": 1e3, "kib": 1024.0, "mb": 1e6, "mib": 2.0**20,
              "gb": 1e9, "gib": 2.0**30},
}
_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*([A-Za-zµ%/]*)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold; ``limit`` is in the metric's base unit (ms, a fraction,
    req/s, bytes...)."""

    expression: str
    metric: str
    """The metric's threshold name (``Metric.threshold_name``: ``p95``, ``throughput``)."""
    op: str
    limit: float
    kind: Kind

    @property
    def figure(self) -> Metric:
        """The registry's metric this threshold checks."""
        metric = by_threshold_name(self.metric)
        assert metric is not None, self.metric  # parse_threshold only makes known ones
        return metric

    def value(self, summary: Summary) -> float | None:
        """The run's figure in the metric's base unit; None when it did not measure it."""
        return self.figure.get(summary)

    def check(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse ``METRIC OP VALUE[UNIT]``.

    Raises:
        ValueError: one line saying what is wrong and what is allowed.
    """
    m = _EXPR.match(text)
    if not m:
        raise ValueError(f"{text!r} is not METRIC OP VALUE (e.g. 'p95<200ms', 'error_rate<1%', "
                         f"'throughput>500'); OP is <, <=, > or >=")
    name, op, number, unit = m.groups()
    metric = by_threshold_name(name.lower())
    if metric is None:
        raise ValueError(f"unknown metric {name!r} in {text!r}; known: p50, p90, p95, p99, max, "
                         f"mean (also all_* and service_*), throughput, attempts_rps, error_rate, "
                         f"errors, requests, dropped, cache_hit_ratio, target_cpu_s_per_1k, rss")
    units = _UNITS[metric.kind]
    factor = units.get(unit.lower() if metric.kind == "bytes" else unit)
    if factor is None:
        allowed = ", ".join(repr(u) for u in units if u) or "none"
        raise ValueError(f"unit {unit!r} does not fit {metric.threshold_name} in {text!r}; "
                         f"allowed: {allowed}")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{number!r} is not a number in {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{number!r} is not a finite number in {text!r}")
    limit = value * factor
    if metric.kind == "ratio" and not 0 <= limit <= 1:
        # A share cannot leave 0..100 %: 'error_rate<150%' always passes, and a bare
        # 'error_rate<5' (a fraction: 500 %) is almost surely a forgotten '%'.
        shown = f"{number}{unit}" + ("" if unit else f" (= {limit * 100:g} %)")
        raise ValueError(f"{metric.threshold_name} is a share: the limit in {text.strip()!r} must be "
                         f"0-100% or a fraction 0-1, got {shown}")
    if limit < 0:
        raise ValueError(f"the limit in {text.strip()!r} must be >= 0 ({metric.threshold_name} is never "
                         f"negative), got {number}{unit}")
    return Threshold(text.strip(), metric.threshold_name, op, limit, metric.kind)
