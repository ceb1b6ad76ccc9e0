"""The registry of a run's headline figures: each defined once, read by every renderer.

A ``Metric`` says where a figure comes from in a ``Summary`` (in its base unit: ms,
req/s, a 0..1 share, a count, CPU-seconds per 1,000 requests, bytes), whether higher is
better, how it is shown (column header, scale, formatter, how a change is written),
which names a threshold may use for it, and, for the figures the noise analysis
compares, how it reads off one interval. The terminal comparison table, the Markdown
table, threshold parsing and checking, threshold result lines and the noise analysis
all read this one table (``METRICS``), so a figure cannot be shown one way and checked
another.

It also holds the number formatters (``fmt_ms``, ``fmt_rate``…): they are part of how
a figure is defined. A light module: no rich, no SQLite, no pydantic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from lab.figures import Summary

__all__ = [
    "CACHE_HIT",
    "COMPARISON_COLUMNS",
    "MARKDOWN_COLUMNS",
    "METRICS",
    "MISSING",
    "NOISE_FIGURES",
    "DeltaKind",
    "IntervalFigures",
    "Kind",
    "Metric",
    "by_threshold_name",
    "fmt_cpu",
    "fmt_int",
    "fmt_mib",
    "fmt_ms",
    "fmt_percent",
    "fmt_rate",
    "fmt_seconds",
    "fmt_significant",
]

Kind = Literal["latency", "ratio", "rate", "count", "bytes", "cpu"]
"""What a figure measures; decides the units a threshold may give it."""
DeltaKind = Literal["relative", "points", "absolute"]
"""How a change is written: ``+412%``, ``+1.2pp`` or ``+120``."""

MISSING = "–"
"""Shown for a value that was not measured."""
MIB = 1024 * 1024


# --------------------------------------------------------------------------- formatters


def fmt_ms(value: float | None) -> str:
    """Milliseconds, precision to suit the size: ``0.412``, ``4.12``, ``41.2``, ``412``."""
    if value is None:
        return MISSING
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_rate(value: float | None) -> str:
    """Requests per second: one decimal below 1,000, whole numbers with separators above."""
    if value is None:
        return MISSING
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_seconds(value: float | None) -> str:
    """Seconds with one decimal."""
    return MISSING if value is None else f"{value:,.1f}"


def fmt_int(value: float | None) -> str:
    """An integer count with thousands separators."""
    return MISSING if value is None else f"{int(value):,}"


def fmt_mib(value_bytes: float | None) -> str:
    """Bytes shown as MiB."""
    if value_bytes is None:
        return MISSING
    mib = value_bytes / MIB
    return f"{mib:.1f}" if mib < 100 else f"{mib:,.0f}"


def fmt_percent(ratio: float | None, digits: int = 2) -> str:
    """A 0..1 ratio shown as a percent number (without the ``%`` sign)."""
    return MISSING if ratio is None else f"{ratio * 100:.{digits}f}"


def fmt_cpu(value: float | None) -> str:
    """CPU-seconds (per 1,000 requests) with three significant-ish decimals."""
    if value is None:
        return MISSING
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def fmt_significant(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits as plain text: ``35,210``, ``12.34``,
    ``0.209``, ``0``: what ``:,.4g`` shows, without its exponent above 10,000."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{round(value, decimals):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct2(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _pct1(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


# --------------------------------------------------------------------------- the registry


class IntervalFigures(Protocol):
    """What the noise rule reads of one stored interval (``lab.store.IntervalRow``)."""

    @property
    def duration_s(self) -> float: ...
    @property
    def ok(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def p50_ms(self) -> float | None: ...
    @property
    def p95_ms(self) -> float | None: ...
    @property
    def p99_ms(self) -> float | None: ...


_BASE_UNIT: dict[Kind, str] = {"latency": "ms", "ratio": "", "rate": "req/s", "count": "",
                               "cpu": "s/1k", "bytes": "B"}
_SHOWN_UNIT: dict[Kind, str] = {"latency": "ms", "ratio": "%", "rate": "req/s", "count": "",
                                "cpu": "s/1k", "bytes": "MiB"}
_SCALE: dict[Kind, float] = {"ratio": 100.0}
_HIGHEST: dict[Kind, float] = {"ratio": 1.0}
"""A share is at most 1; every kind has 0 as its lowest value (no figure is negative)."""
_FORMAT: dict[Kind, Callable[[float | None], str]] = {
    "latency": fmt_ms, "ratio": _pct2, "rate": fmt_rate, "count": fmt_int, "cpu": fmt_cpu,
    "bytes": fmt_mib,
}


@dataclass(frozen=True)
class Metric:
    """One headline figure of a run."""

    name: str
    """Its name with its unit, as in the JSON summary and ``lab compare``: ``p95_ms``."""
    kind: Kind
    get: Callable[[Summary], float | None]
    """The figure in its base unit (``unit``); None when the run did not measure it."""
    help: str
    threshold_names: tuple[str, ...] = ()
    """Names a threshold may use, the first the one results report (``p95``, ``latency_p95``)."""
    higher_is_better: bool = False
    header: str = ""
    """Column header in the tables, unit after a space (``p95 ms``); "" when no table shows it."""
    fmt: Callable[[float | None], str] | None = None
    """Formats the shown value (``shown``); the kind's formatter when None."""
    delta: DeltaKind = "relative"
    per_interval: Callable[[IntervalFigures], float | None] | None = None
    """The noise rule: the figure of one interval, whose spread over a single run gives
    its noise band (``lab.analysis.noise``); None for figures the noise analysis skips."""

    @property
    def unit(self) -> str:
        """The base unit a threshold's limit and ``get`` are in: ``ms``, ``req/s``, ``B``; "" for
        shares (a 0..1 fraction) and counts."""
        return _BASE_UNIT[self.kind]

    @property
    def threshold_name(self) -> str:
        return self.threshold_names[0] if self.threshold_names else self.name

    def scale(self, value: float) -> float:
        """A value in the base unit as a table shows it (a share as a percent)."""
        return value * _SCALE.get(self.kind, 1.0)

    def clamp(self, value: float) -> float:
        """``value`` (base unit) held to the values the figure can take: never below 0
        (a latency, rate, count, byte or CPU figure), a share never above 1. For ranges
        computed around a figure (± standard errors) that would otherwise cross them."""
        return min(max(value, 0.0), _HIGHEST.get(self.kind, math.inf))

    def shown(self, summary: Summary) -> float | None:
        """The figure as a table shows it (a share as a percent)."""
        value = self.get(summary)
        return None if value is None else self.scale(value)

    def format(self, shown: float | None) -> str:
        """A shown value as a table cell: ``12.3``, ``35,210``, ``–``."""
        return (self.fmt or _FORMAT[self.kind])(shown)

    def text(self, value: float | None) -> str:
        """A figure or a threshold's limit, in the base unit, as a person reads it in a
        sentence, unit included: ``35,210 req/s``, ``12.34 ms``, ``0.209 %``, ``50 ms``;
        ``not measured`` for None. Four significant digits (three for a share), never an
        exponent, thousands separated."""
        if value is None:
            return "not measured"
        digits = 3 if self.kind == "ratio" else 4
        unit = "%" if self.kind == "ratio" else self.unit
        return f"{fmt_significant(self.scale(value), digits)} {unit}".rstrip()


def _lat(attr: str, field: str) -> Callable[[Summary], float | None]:
    """A latency figure; None when no request was measured (0 ms would look fastest)."""
    def get(s: Summary) -> float | None:
        latency = getattr(s, attr)
        return float(getattr(latency, field)) if latency.count else None
    return get


def _per_s(iv: IntervalFigures) -> float | None:
    return iv.ok / iv.duration_s if iv.duration_s > 0 else None


def _error_share(iv: IntervalFigures) -> float | None:
    return iv.errors / iv.requests if iv.requests else None


_ITV: dict[str, Callable[[IntervalFigures], float | None]] = {
    "p50": lambda iv: iv.p50_ms, "p95": lambda iv: iv.p95_ms, "p99": lambda iv: iv.p99_ms,
}

THROUGHPUT = Metric("throughput_rps", "rate", lambda s: s.throughput_rps, "successful req/s",
                    ("throughput", "throughput_rps", "rps"), higher_is_better=True, header="req/s",
                    per_interval=_per_s)
ERROR_RATE = Metric("error_rate", "ratio", lambda s: s.error_rate, "failed share of attempts",
                    ("error_rate", "errors_pct"), header="err %", delta="points",
                    per_interval=_error_share)
DROPPED = Metric("dropped", "count", lambda s: float(s.dropped), "open model: requests not sent",
                 ("dropped",), header="drop", delta="absolute")
TARGET_CPU = Metric("target_cpu_s_per_1k", "cpu", lambda s: s.target_cpu_s_per_1k,
                    "target CPU-seconds per 1,000 requests", ("target_cpu_s_per_1k", "cpu_per_1k"),
                    header="CPU s/1k")
TARGET_RSS = Metric("target_peak_rss_bytes", "bytes",
                    lambda s: None if s.target_peak_rss_bytes is None else float(s.target_peak_rss_bytes),
                    "target peak memory", ("target_peak_rss_bytes", "rss"), header="RSS MiB")
CACHE_HIT = Metric("cache_hit_ratio", "ratio", lambda s: s.cache_hit_ratio, "cache hits / lookups",
                   ("cache_hit_ratio", "cache_hit"), higher_is_better=True, header="cache %", fmt=_pct1,
                   delta="points")

_LATENCY: dict[str, Metric] = {}
METRICS: list[Metric] = [THROUGHPUT]
"""Every figure, in the order the tables show them."""
for _p in ("p50", "p90", "p95", "p99", "max", "mean"):
    _LATENCY[_p] = Metric(f"{_p}_ms", "latency", _lat("latency_ms", _p),
                          f"{_p} latency of successful requests",
                          (_p, f"latency_{_p}"), header=f"{_p} ms", per_interval=_ITV.get(_p))
    METRICS.append(_LATENCY[_p])
for _p in ("p50", "p90", "p95", "p99", "max", "mean"):
    METRICS.append(Metric(f"all_{_p}_ms", "latency", _lat("latency_all_ms", _p),
                          f"{_p} latency of every attempt", (f"all_{_p}",)))
    METRICS.append(Metric(f"service_{_p}_ms", "latency", _lat("service_ms", _p),
                          f"{_p} service time (open model)", (f"service_{_p}",)))
METRICS += [
    Metric("attempts_rps", "rate", lambda s: s.attempts_rps, "completed attempts per second",
           ("attempts_rps",), higher_is_better=True),
    ERROR_RATE,
    Metric("errors", "count", lambda s: float(s.errors), "failed attempts", ("errors",)),
    Metric("requests", "count", lambda s: float(s.requests), "completed attempts", ("requests",)),
    DROPPED, CACHE_HIT, TARGET_CPU, TARGET_RSS,
]

COMPARISON_COLUMNS: tuple[Metric, ...] = (
    THROUGHPUT, _LATENCY["p50"], _LATENCY["p95"], _LATENCY["p99"], _LATENCY["max"], ERROR_RATE, DROPPED,
    TARGET_CPU, TARGET_RSS)
"""The terminal comparison table's figures (``CACHE_HIT`` joins when a run reports it)."""
MARKDOWN_COLUMNS: tuple[Metric, ...] = (
    THROUGHPUT, _LATENCY["p50"], _LATENCY["p95"], _LATENCY["p99"], ERROR_RATE, TARGET_CPU)
"""The Markdown table's figures, sized for a pull-request comment (``CACHE_HIT`` joins too)."""
NOISE_FIGURES: tuple[Metric, ...] = tuple(m for m in METRICS if m.per_interval is not None)
"""The figures ``lab compare`` judges against noise: those with a per-interval reading."""

_BY_THRESHOLD_NAME: dict[str, Metric] = {name: m for m in METRICS for name in m.threshold_names}


def by_threshold_name(name: str) -> Metric | None:
    """The metric a threshold names (any of its names, lower case), or None."""
    return _BY_THRESHOLD_NAME.get(name)
