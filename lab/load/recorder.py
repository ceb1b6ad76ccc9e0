"""Per-worker interval accumulators: counts per microsecond, turned into HDR histograms
once per interval.

Recording a latency straight into an HDR histogram costs about 1.1 µs of pure Python
(``HdrHistogram.record_value``); at 80,000 req/s that alone is 9 % of a core. So the hot
path only counts: each latency becomes an integer number of microseconds, quantized to
the lowest value of its HDR bucket (``count_us``: exact below 2,048 µs, and the
histogram cannot tell the difference above), and is counted in a ``dict[int, int]``
(about 0.1 µs). When the interval is reported, the counts go into one reused histogram
(``add_counts``) that is encoded and reset, so no histogram is allocated per interval and
the encoded histograms are the same as if every latency had been recorded one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lab.load.histogram import EXACT_BELOW_US, LatencyHistogram
from lab.load.wire import IntervalReport

_INF = float("inf")


def count_us(counts: dict[int, int], seconds: float) -> None:
    """Count one duration of ``seconds`` in ``counts`` ({µs: n}), quantized as in HDR: as
    the lowest value of its HDR bucket (inlined again on the recorder's hot path).

    Counting that value instead of the exact µs changes nothing in the histogram (same
    counts, percentiles, min, max, mean and encoding), so the counts go into a histogram
    later with ``add_counts`` at no loss; it also bounds how many distinct values a
    counts dict holds (about 23,000 over 1 µs .. 1 hour).
    """
    us = int(seconds * 1_000_000)
    if us >= EXACT_BELOW_US:
        shift = us.bit_length() - 11
        us = (us >> shift) << shift
    counts[us] = counts.get(us, 0) + 1


def _encode(counts: dict[int, int], scratch: LatencyHistogram) -> str:
    """The counts as an encoded HDR histogram (``""`` when empty), through ``scratch``."""
    if not counts:
        return ""
    scratch.reset()
    scratch.add_counts(counts)
    return scratch.encode().decode()


@dataclass(slots=True)
class IntervalAccumulator:
    """Everything one worker measured in one interval.

    Latencies are kept as counts per microsecond value (``{µs: n}``, quantized to HDR
    buckets) and become histograms only in ``report``.
    """

    index: int
    ok: int = 0
    errors: int = 0
    bytes: int = 0
    dropped: int = 0
    interrupted: int = 0
    errors_by_class: dict[str, int] = field(default_factory=dict)
    ok_us: dict[int, int] = field(default_factory=dict)
    """Latency of successful requests, µs → count."""
    err_us: dict[int, int] = field(default_factory=dict)
    """Latency of failed attempts, µs → count. "All attempts" is ok + err, added up once
    per interval rather than counted twice per request."""
    service_us: dict[int, int] | None = None
    """Service time of successful requests, µs → count; None when it equals latency
    (closed model: the request goes out when it is due), so it is not counted twice."""
    lag_us: dict[int, int] = field(default_factory=dict)
    """Lag of this worker, µs → count: how late its periodic 10 ms wake-ups fired and,
    in the open model, how late each request went out versus its intended send time
    (its send lag). Its p99 flags a generator-bound run (over 10 ms)."""
    started: int = 0
    """Requests that began in this interval (see ``StatsRecorder.begin``)."""
    finished: int = 0
    """Requests that ended in this interval: completed (ok or error) or interrupted."""
    span_s: float = 0.0
    """Σ (end − interval start) over requests that ended here minus Σ (begin − interval
    start) over requests that began here, seconds: with the requests outstanding at the
    interval's end, the area under the in-flight curve (see ``report``)."""
    in_flight_at_start: int = 0
    """Requests outstanding when the interval began (set by ``StatsRecorder.pop``)."""

    def encode_histograms(self, scratch: LatencyHistogram) -> Iterator[tuple[str, str]]:
        """The interval's histograms as ``(IntervalReport field, encoded)`` pairs, one at a time.

        Each step puts one counts dict into ``scratch`` and encodes it: up to about a
        millisecond for a dict of 5,000 values. The worker's reporter lets its event loop
        run between steps, so sends are never held up for the whole report.
        """
        ok_blob = _encode(self.ok_us, scratch)
        yield "histogram", ok_blob
        if self.err_us:
            if not self.ok_us:
                scratch.reset()
            scratch.add_counts(self.err_us)  # on top of the ok counts still in scratch
            yield "histogram_all", scratch.encode().decode()
        else:
            yield "histogram_all", ok_blob
        yield "histogram_service", ok_blob if self.service_us is None else _encode(self.service_us, scratch)
        yield "histogram_lag", _encode(self.lag_us, scratch)  # loop lag and, open model, send lag

    def message(self, start_s: float, duration_s: float, active_vus: int, target_rate: float,
                stage: int, cpu_percent: float | None, histograms: dict[str, str]) -> IntervalReport:
        """The interval as the message for the engine (``lab.load.wire``).

        Besides counts and the encoded ``histograms`` (from ``encode_histograms``) it holds
        ``in_flight_mean``: the time-weighted mean number of this worker's requests
        outstanding during the interval, each from its begin (its send in the closed
        model, its intended send time in the open one: where its latency starts) to its
        end. By Little's law it equals completions per second times their mean latency,
        up to the requests that straddle the interval's edges.

        Args:
            start_s: start of the interval, seconds after the load began.
            duration_s: its length, seconds.
            active_vus, target_rate, stage: the executor's state at its end.
            cpu_percent: this process's CPU over the interval, % of one core.
            histograms: message key → encoded histogram.
        """
        # The area under the in-flight curve N(t) over [a, b) is exactly
        # Σ(end − a) − Σ(begin − a) over the ends and begins inside it, plus N(b)·(b − a).
        at_end = self.in_flight_at_start + self.started - self.finished
        area = self.span_s + at_end * duration_s
        in_flight = max(0.0, area / duration_s) if duration_s > 0 else float(at_end)
        return IntervalReport(
            index=self.index,
            t_s=start_s,
            duration_s=duration_s,
            ok=self.ok,
            errors=self.errors,
            bytes=self.bytes,
            dropped=self.dropped,
            interrupted=self.interrupted,
            errors_by_class=self.errors_by_class,
            active_vus=active_vus,
            target_rate=target_rate,
            stage=stage,
            histogram=histograms["histogram"],
            histogram_all=histograms["histogram_all"],
            histogram_service=histograms["histogram_service"],
            histogram_lag=histograms["histogram_lag"],
            cpu_percent=cpu_percent,
            in_flight_mean=round(in_flight, 4),
        )

    def report(self, start_s: float, duration_s: float, active_vus: int, target_rate: float,
               stage: int, cpu_percent: float | None = None,
               scratch: LatencyHistogram | None = None) -> IntervalReport:
        """``message`` with every histogram encoded at once (through ``scratch``, or a
        new histogram when None)."""
        h = scratch if scratch is not None else LatencyHistogram()
        return self.message(start_s, duration_s, active_vus, target_rate, stage, cpu_percent,
                            dict(self.encode_histograms(h)))


_NOWHERE = IntervalAccumulator(-1)
"""Stands for "no interval looked up yet" (its time range is empty)."""


class StatsRecorder:
    """Routes each completed attempt to the interval it completed in.

    Completions after the run's end (in-flight requests being awaited) land in the last
    interval, whose length then stretches to the real end, so no sliver interval appears.

    Args:
        t0: ``time.monotonic()`` at which the load began (shared by all workers; on Linux
            the monotonic clock is system-wide).
        interval_s: interval length, seconds.
        total_s: planned run length, seconds.
        service_is_latency: service time equals latency (closed model): not kept twice.
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
        self.scratch = LatencyHistogram()
        """The one histogram every report is encoded through."""
        # The accumulator of the interval [_lo, _hi) (monotonic seconds), looked up last:
        # nearly every event falls in it, so the hot path needs two comparisons.
        self._cur = _NOWHERE
        self._lo = _INF
        self._hi = -_INF
        self._base = 0.0  # monotonic start of the _cur interval
        self._in_flight = 0  # outstanding when the next interval to pop began

    def index_at(self, now: float) -> int:
        return min(max(0, int((now - self.t0) / self.interval_s)), self.last_index)

    def acc(self, index: int) -> IntervalAccumulator:
        # A late drop (intended time in a shipped interval) counts in the open one.
        index = max(index, self._floor)
        a = self._acc.get(index)
        if a is None:
            a = self._acc[index] = IntervalAccumulator(index)
            if not self.service_is_latency:
                a.service_us = {}
        return a

    def _acc_at(self, now: float) -> tuple[IntervalAccumulator, float]:
        """The accumulator for an event at monotonic ``now`` (remembered for the next
        event) and how far into its interval ``now`` is, seconds (0 for an event before
        the interval: a late one moved into the first interval not yet shipped)."""
        index = self.index_at(now)
        a = self.acc(index)
        base = self.t0 + a.index * self.interval_s
        if a.index == index:  # not a late event moved into the open interval
            self._cur, self._base = a, base
            self._lo = -_INF if index == 0 else base
            self._hi = _INF if index == self.last_index else base + self.interval_s
        return a, max(0.0, now - base)

    def begin(self, t: float) -> None:
        """A request begins at monotonic ``t``: its send (closed model) or its intended
        send time (open model), where its latency is measured from. Every begun request
        ends in ``record`` or ``interrupt``; between the two it counts as in flight."""
        if self._lo <= t < self._hi:
            a = self._cur
            a.span_s -= max(0.0, t - self._base)
        else:
            a, offset = self._acc_at(t)
            a.span_s -= offset
        a.started += 1

    def record(self, now: float, latency_s: float, service_s: float, nbytes: int,
               error_class: str | None, status: int | None, message: str | None,
               send_lag_s: float | None = None) -> None:
        """Record one completed attempt.

        Args:
            now: monotonic completion time.
            latency_s: from the intended send time (open model) or the send (closed).
            service_s: from the actual send.
            nbytes: response body bytes.
            error_class: None for a success, else a class of ``lab.events.ERROR_CLASSES``.
            status: the HTTP status, if a response came.
            message: what went wrong, for the error samples.
            send_lag_s: open model: how late the generator sent it, seconds (see
                ``OpenExecutor``); counted with the loop lag.
        """
        if self._lo <= now < self._hi:
            a = self._cur
            a.span_s += now - self._base
        else:
            a, offset = self._acc_at(now)
            a.span_s += offset
        a.finished += 1
        a.bytes += nbytes
        if send_lag_s is not None:
            us = int(send_lag_s * 1_000_000)  # count_us, inlined
            if us >= EXACT_BELOW_US:
                shift = us.bit_length() - 11
                us = (us >> shift) << shift
            counts = a.lag_us
            counts[us] = counts.get(us, 0) + 1
        if error_class is None:
            a.ok += 1
            us = int(latency_s * 1_000_000)
            if us >= EXACT_BELOW_US:  # count_us, inlined
                shift = us.bit_length() - 11
                us = (us >> shift) << shift
            counts = a.ok_us
            counts[us] = counts.get(us, 0) + 1
            counts = a.service_us
            if counts is not None:
                us = int(service_s * 1_000_000)
                if us >= EXACT_BELOW_US:
                    shift = us.bit_length() - 11
                    us = (us >> shift) << shift
                counts[us] = counts.get(us, 0) + 1
            return
        count_us(a.err_us, latency_s)
        a.errors += 1
        a.errors_by_class[error_class] = a.errors_by_class.get(error_class, 0) + 1
        key = (error_class, status)
        sample = self.error_samples.get(key)
        if sample is None:
            self.error_samples[key] = [message or error_class, 1]
        else:
            sample[1] += 1

    def drop(self, intended: float, count: int = 1) -> None:
        """``count`` open-model arrivals due at monotonic ``intended`` (or within its
        interval) were not sent: the in-flight cap was reached, or the run ended first."""
        self.acc(self.index_at(intended)).dropped += count

    def lag(self, now: float, lag_s: float) -> None:
        """Count a lag of ``lag_s`` seconds observed at monotonic ``now``: a late wake-up
        of the loop-lag probe, or a request's send lag."""
        a = self._cur if self._lo <= now < self._hi else self._acc_at(now)[0]
        count_us(a.lag_us, lag_s)

    def interrupt(self, now: float) -> None:
        """A begun request was cancelled at monotonic ``now`` (the run's end or an abort):
        neither ok nor an error, and no longer in flight."""
        a, offset = self._acc_at(now)
        a.span_s += offset
        a.finished += 1
        a.interrupted += 1

    def pop(self, index: int) -> IntervalAccumulator:
        """Hand over interval ``index`` for its report; later events never land in it."""
        self._floor = max(self._floor, index + 1)
        if self._cur.index < self._floor:
            self._cur, self._lo, self._hi = _NOWHERE, _INF, -_INF
        a = self._acc.pop(index, None) or IntervalAccumulator(index)
        a.in_flight_at_start = self._in_flight
        self._in_flight += a.started - a.finished
        return a
