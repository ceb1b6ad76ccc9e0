"""A run's figures as plain data: latency percentiles, the headline summary, and what
summarising reads of each interval and resource sample.

Frozen dataclasses and nothing else: this module imports nothing of the lab, so every
layer (the store, the analysis, the renderers, the TUI) can hold these without pulling in
what computes them (``lab.analysis.summary``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds. All 0.0 when nothing was recorded."""

    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    mean: float
    count: int = 0

    def as_dict(self) -> dict[str, float]:
        """The JSON form; ``count`` 0 means the figures are 0.0 because nothing was measured."""
        out: dict[str, float] = {k: round(getattr(self, k), 3)
                                 for k in ("p50", "p90", "p95", "p99", "max", "mean")}
        out["count"] = self.count
        return out


@dataclass(frozen=True)
class Summary:
    """Headline figures of one run over its measured window (warm-up excluded)."""

    requests: int
    """Completed attempts in the window: ok + errors."""
    ok: int
    errors: int
    dropped: int
    interrupted: int
    bytes: int
    window_s: float
    """Real length of the measured window, seconds."""
    throughput_rps: float
    """Goodput: successful requests per second of the window."""
    attempts_rps: float
    """Completed attempts (errors included) per second of the window."""
    latency_ms: Latency
    """Successful requests, from the intended send time (open model) or the send."""
    latency_all_ms: Latency
    """Every completed attempt, errors included."""
    service_ms: Latency
    """Successful requests from the actual send (service time)."""
    error_rate: float
    """errors / requests, 0..1."""
    errors_by_class: dict[str, int] = field(default_factory=dict)
    target_cpu_s_per_1k: float | None = None
    """Target CPU-seconds spent per 1,000 completed requests in the window."""
    target_peak_rss_bytes: int | None = None
    generator_cpu_s_per_1k: float | None = None
    generator_peak_cpu_percent: float | None = None
    """Highest CPU percent (of one core) of any single generator process."""
    cache_hit_ratio: float | None = None
    """From the target's stats path, over the window; None when it reports none."""
    generator_bound: bool = False
    """The load generator, not the target, limited this run: its numbers describe the
    generator (see ``GENERATOR_BUSY_PERCENT``, ``LOOP_LAG_LIMIT_MS``)."""
    generator_bound_reason: str | None = None
    loop_lag_p99_ms: float | None = None
    """p99 of the generator workers' event-loop lag over the window, ms."""
    offered_rps: float | None = None
    """The load the run intended (open model: arrivals scheduled; closed model: ``max_rps``)
    per second of the window without its drain; None without an intended rate
    (``lab.analysis.offered``)."""
    achieved_rps: float | None = None
    """Successful requests per second over the same seconds as ``offered_rps``."""
    load_not_achieved: bool = False
    """Achieved below 90 % of offered: a saturated target (open model) or a pace the VUs
    could not keep (coordinated omission)."""
    load_not_achieved_reason: str | None = None

    def as_contract(self) -> dict[str, object]:
        """The ``summary`` object of the ``lab run --format json`` contract (plus extras)."""
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "dropped": self.dropped,
            "interrupted": self.interrupted,
            "throughput_rps": round(self.throughput_rps, 3),
            "attempts_rps": round(self.attempts_rps, 3),
            "latency_ms": self.latency_ms.as_dict(),
            "latency_all_ms": self.latency_all_ms.as_dict(),
            "service_ms": self.service_ms.as_dict(),
            "error_rate": round(self.error_rate, 6),
            "errors_by_class": dict(self.errors_by_class),
            "target_cpu_s_per_1k": _round(self.target_cpu_s_per_1k),
            "target_peak_rss_bytes": self.target_peak_rss_bytes,
            "generator_cpu_s_per_1k": _round(self.generator_cpu_s_per_1k),
            "generator_peak_cpu_percent": _round(self.generator_peak_cpu_percent),
            "cache_hit_ratio": _round(self.cache_hit_ratio),
            "window_s": round(self.window_s, 3),
            "bytes": self.bytes,
            "generator_bound": self.generator_bound,
            "generator_bound_reason": self.generator_bound_reason,
            "loop_lag_p99_ms": _round(self.loop_lag_p99_ms, 3),
            "offered_rps": _round(self.offered_rps, 3),
            "achieved_rps": _round(self.achieved_rps, 3),
            "load_not_achieved": self.load_not_achieved,
            "load_not_achieved_reason": self.load_not_achieved_reason,
        }


def _round(value: float | None, ndigits: int = 4) -> float | None:
    return None if value is None else round(value, ndigits)


@dataclass(frozen=True)
class IntervalCounts:
    """What summarise() needs of one merged interval."""

    t_s: float
    duration_s: float
    ok: int
    errors: int
    dropped: int
    interrupted: int
    bytes: int
    errors_by_class: dict[str, int]
    histogram: bytes
    histogram_all: bytes
    histogram_service: bytes
    generator_cpu_percent: float | None = None
    histogram_lag: bytes = b""
    generator_cpu_by_worker: tuple[float | None, ...] = ()
    """Each generator worker's CPU (index = worker), percent of one core."""
    histogram_lag_by_worker: tuple[bytes, ...] = ()
    """Each generator worker's lag histogram (index = worker); empty when not known."""


@dataclass(frozen=True)
class CpuReading:
    """What summarise() needs of one resource sample."""

    t_s: float
    role: str
    pid: int | None
    cpu_percent: float | None
    cpu_seconds: float
    rss_bytes: int
