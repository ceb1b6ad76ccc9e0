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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lab.figures import Summary

Kind = Literal["latency", "ratio", "rate", "count", "bytes", "cpu"]


@dataclass(frozen=True)
class Metric:
    """A summary figure a threshold can name."""

    name: str
    kind: Kind
    get: Callable[[Summary], float | None]
    help: str


def _lat(attr: str, field: str) -> Callable[[Summary], float | None]:
    def get(s: Summary) -> float | None:
        latency = getattr(s, attr)
        return float(getattr(latency, field)) if latency.count else None
    return get


_METRICS: dict[str, Metric] = {}


def _add(names: Sequence[str], kind: Kind, get: Callable[[Summary], float | None], help: str) -> None:
    for name in names:
        _METRICS[name] = Metric(names[0], kind, get, help)


for _p in ("p50", "p90", "p95", "p99", "max", "mean"):
    _add((_p, f"latency_{_p}"), "latency", _lat("latency_ms", _p), f"{_p} latency of successful requests")
    _add((f"all_{_p}",), "latency", _lat("latency_all_ms", _p), f"{_p} latency of every attempt")
    _add((f"service_{_p}",), "latency", _lat("service_ms", _p), f"{_p} service time (open model)")
_add(("throughput", "throughput_rps", "rps"), "rate", lambda s: s.throughput_rps, "successful req/s")
_add(("attempts_rps",), "rate", lambda s: s.attempts_rps, "completed attempts per second")
_add(("error_rate", "errors_pct"), "ratio", lambda s: s.error_rate, "failed share of attempts")
_add(("errors",), "count", lambda s: float(s.errors), "failed attempts")
_add(("requests",), "count", lambda s: float(s.requests), "completed attempts")
_add(("dropped",), "count", lambda s: float(s.dropped), "open model: requests not sent")
_add(("cache_hit_ratio", "cache_hit"), "ratio", lambda s: s.cache_hit_ratio, "cache hits / lookups")
_add(("target_cpu_s_per_1k", "cpu_per_1k"), "cpu", lambda s: s.target_cpu_s_per_1k,
     "target CPU-seconds per 1,000 requests")
_add(("target_peak_rss_bytes", "rss"), "bytes",
     lambda s: None if s.target_peak_rss_bytes is None else float(s.target_peak_rss_bytes),
     "target peak memory")

_UNITS: dict[Kind, dict[str, float]] = {
    "latency": {"": 1.0, "ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0},
    "ratio": {"": 1.0, "%": 0.01},
    "rate": {"": 1.0, "rps": 1.0, "/s": 1.0, "req/s": 1.0},
    "count": {"": 1.0},
    "cpu": {"": 1.0, "s": 1.0},
    "bytes": {"": 1.0, "b": 1.0, "kb": 1e3, "kib": 1024.0, "mb": 1e6, "mib": 2.0**20,
              "gb": 1e9, "gib": 2.0**30},
}
_BASE_UNIT: dict[Kind, str] = {"latency": "ms", "ratio": "", "rate": "req/s", "count": "",
                               "cpu": "s/1k", "bytes": "B"}
_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*([A-Za-zµ%/]*)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def metric_value(metric: str, summary: Summary) -> float | None:
    """The figure ``metric`` names (a canonical name, ``Threshold.metric``) in ``summary``,
    in the metric's base unit; None when the run did not measure it."""
    return _METRICS[metric].get(summary)


def base_unit(kind: Kind) -> str:
    """The unit a threshold's limit and a checked figure are in: ``ms``, ``req/s``, ``B``…"""
    return _BASE_UNIT[kind]


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold; ``limit`` is in the metric's base unit (ms, a fraction,
    req/s, bytes...)."""

    expression: str
    metric: str
    op: str
    limit: float
    kind: Kind

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
    metric = _METRICS.get(name.lower())
    if metric is None:
        raise ValueError(f"unknown metric {name!r} in {text!r}; known: p50, p90, p95, p99, max, "
                         f"mean (also all_* and service_*), throughput, attempts_rps, error_rate, "
                         f"errors, requests, dropped, cache_hit_ratio, target_cpu_s_per_1k, rss")
    units = _UNITS[metric.kind]
    factor = units.get(unit.lower() if metric.kind == "bytes" else unit)
    if factor is None:
        allowed = ", ".join(repr(u) for u in units if u) or "none"
        raise ValueError(f"unit {unit!r} does not fit {metric.name} in {text!r}; allowed: {allowed}")
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
        raise ValueError(f"{metric.name} is a share: the limit in {text.strip()!r} must be "
                         f"0-100% or a fraction 0-1, got {shown}")
    if limit < 0:
        raise ValueError(f"the limit in {text.strip()!r} must be >= 0 ({metric.name} is never "
                         f"negative), got {number}{unit}")
    return Threshold(text.strip(), metric.name, op, limit, metric.kind)
