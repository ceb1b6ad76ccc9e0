"""Per-worker interval accumulators: counts and HDR histograms, one per interval index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.load.histogram import LatencyHistogram


@dataclass(slots=True)
class IntervalAccumulator:
    """Everything one worker measured in one interval."""

    index: int
    ok: int = 0
    errors: int = 0
    bytes: int = 0
    dropped: int = 0
    interrupted: int = 0
    errors_by_class: dict[str, int] = field(default_factory=dict)
    hist_ok: LatencyHistogram = field(default_factory=LatencyHistogram)
    hist_err: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Failed attempts; "all attempts" is ok + err, merged once per interval rather than
    recorded twice per request (an HDR record costs ~1 µs of the generator's CPU)."""
    hist_service: LatencyHistogram | None = None
    """Service time of successful requests; None when it equals latency (closed model:
    the request goes out when it is due), so it is not recorded twice."""
    hist_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Event-loop lag of this worker: how late its periodic wake-ups fired."""

    def report(self, start_s: float, duration_s: float, active_vus: int, target_rate: float,
               stage: int, cpu_percent: float | None = None) -> dict[str, Any]:
        """The interval as a JSON-able message for the engine."""
        ok_blob = self.hist_ok.encode().decode()
        if self.errors:
            everything = LatencyHistogram()
            everything.merge(self.hist_ok)
            everything.merge(self.hist_err)
            all_blob = everything.encode().decode()
        else:
            all_blob = ok_blob
        service_blob = ok_blob if self.hist_service is None else self.hist_service.encode().decode()
        return {
            "type": "interval",
            "index": self.index,
            "t_s": start_s,
            "duration_s": duration_s,
            "ok": self.ok,
            "errors": self.errors,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "interrupted": self.interrupted,
            "errors_by_class": self.errors_by_class,
            "active_vus": active_vus,
            "target_rate": target_rate,
            "stage": stage,
            "histogram": ok_blob,
            "histogram_all": all_blob,
            "histogram_service": service_blob,
            "histogram_lag": self.hist_lag.encode().decode(),
            "cpu_percent": cpu_percent,
        }


class StatsRecorder:
    """Routes each completed attempt to the interval it completed in.

    Completions after the run's end (in-flight requests being awaited) land in the last
    interval, whose length then stretches to the real end, so no sliver interval appears.

    Args:
        t0: ``time.monotonic()`` at which the load began (shared by all workers; on Linux
            the monotonic clock is system-wide).
        interval_s: interval length, seconds.
        total_s: planned run length, seconds.
    """

    def __init__(self, t0: float, interval_s: float, total_s: float,
                 service_is_latency: bool = False) -> None:
        self.t0 = t0
        self.service_is_latency = service_is_latency
        self.interval_s = interval_s
        self.last_index = max(0, int(-(-total_s // interval_s)) - 1)
        self._acc: dict[int, IntervalAccumulator] = {}
        self._floor = 0  # intervals below this were already shipped
        self.error_samples: dict[tuple[str, int | None], list[Any]] = {}

    def index_at(self, now: float) -> int:
        return min(max(0, int((now - self.t0) / self.interval_s)), self.last_index)

    def acc(self, index: int) -> IntervalAccumulator:
        # A late drop (intended time in a shipped interval) counts in the open one.
        index = max(index, self._floor)
        a = self._acc.get(index)
        if a is None:
            a = self._acc[index] = IntervalAccumulator(index)
            if not self.service_is_latency:
                a.hist_service = LatencyHistogram()
        return a

    def record(self, now: float, latency_s: float, service_s: float, nbytes: int,
               error_class: str | None, status: int | None, message: str | None) -> None:
        """Record one completed attempt.

        Args:
            now: monotonic completion time.
            latency_s: from the intended send time (open model) or the send (closed).
            service_s: from the actual send.
        """
        a = self.acc(self.index_at(now))
        a.bytes += nbytes
        if error_class is None:
            a.ok += 1
            a.hist_ok.record_s(latency_s)
            if a.hist_service is not None:
                a.hist_service.record_s(service_s)
            return
        a.hist_err.record_s(latency_s)
        a.errors += 1
        a.errors_by_class[error_class] = a.errors_by_class.get(error_class, 0) + 1
        key = (error_class, status)
        sample = self.error_samples.get(key)
        if sample is None:
            self.error_samples[key] = [message or error_class, 1]
        else:
            sample[1] += 1

    def drop(self, intended: float) -> None:
        self.acc(self.index_at(intended)).dropped += 1

    def lag(self, now: float, lag_s: float) -> None:
        self.acc(self.index_at(now)).hist_lag.record_s(lag_s)

    def interrupt(self, now: float) -> None:
        self.acc(self.index_at(now)).interrupted += 1

    def pop(self, index: int) -> IntervalAccumulator:
        self._floor = max(self._floor, index + 1)
        return self._acc.pop(index, None) or IntervalAccumulator(index)
