"""Each replica's traffic per interval, from the balancer's access log.

nginx writes one line per proxied request with the upstream that answered it
(``$upstream_addr``) and that upstream's response time (``$upstream_response_time``, in
seconds to the millisecond). The lines are put in the run's one-second intervals by the
time nginx finished them (``$msec``), so the per-replica counts of an interval add up to
what the balancer served in it, and each replica's percentiles come from its own merged
histograms, never from averaged percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from lab.load.histogram import LatencyHistogram

CLIENT_CLOSED = 499
"""nginx's status for a request whose client closed the connection before the answer (the
generator gave up on it: a timeout): not served, so counted as an error of the replica."""
NO_REPLICA = -1
"""The replica index of requests the balancer answered itself (no upstream to try)."""


class LogEntry(Protocol):
    """What is read of one access-log line (``lab.topology.balancer.AccessEntry``)."""

    @property
    def t_unix(self) -> float: ...
    @property
    def upstream(self) -> str | None: ...
    @property
    def status(self) -> int: ...
    @property
    def request_time_ms(self) -> float: ...
    @property
    def upstream_time_ms(self) -> float | None: ...


@dataclass(frozen=True)
class ReplicaSlice:
    """What one replica served in one interval."""

    t_s: float
    duration_s: float
    replica: int
    requests: int
    errors: int
    """Answers with status 500 or above, and requests the client gave up on (499)."""
    histogram: bytes
    """Encoded HDR histogram (µs) of the response time nginx measured for the replica."""


class _Bucket:
    __slots__ = ("errors", "hist", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.hist = LatencyHistogram()


class TrafficSplitter:
    """Puts access-log entries into (interval, replica) buckets.

    Args:
        wall_t0: the Unix time the run's clock started (t = 0 s).
        interval_s: the length of an interval.
    """

    def __init__(self, wall_t0: float, interval_s: float = 1.0) -> None:
        self.wall_t0 = wall_t0
        self.interval_s = interval_s
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._emitted_below = 0
        """Intervals below this index were handed out already."""
        self.late = 0
        """Entries that arrived for an interval already handed out (counted in the next
        one handed out, never dropped)."""
        self.served: dict[int, int] = {}
        """Replica index → entries added so far (``NO_REPLICA``: none to send them to), as
        they arrive, whatever interval they belong to."""

    def add(self, entries: Iterable[LogEntry], replicas: Mapping[str, int]) -> None:
        """Count ``entries``; ``replicas`` maps ``127.0.0.1:PORT`` to a replica index."""
        for e in entries:
            k = max(0, math.floor((e.t_unix - self.wall_t0) / self.interval_s))
            if k < self._emitted_below:
                self.late += 1
                k = self._emitted_below
            index = replicas.get(e.upstream, NO_REPLICA) if e.upstream else NO_REPLICA
            self.served[index] = self.served.get(index, 0) + 1
            bucket = self._buckets.get((k, index))
            if bucket is None:
                bucket = self._buckets[(k, index)] = _Bucket()
            bucket.requests += 1
            if e.status >= 500 or e.status == CLIENT_CLOSED:
                bucket.errors += 1
            ms = e.upstream_time_ms if e.upstream_time_ms is not None else e.request_time_ms
            bucket.hist.record_s(ms / 1000.0)

    def take(self, before_s: float | None = None) -> list[ReplicaSlice]:
        """The slices of every interval that ends at or before ``before_s`` (all of them
        with None), in time then replica order; each is handed out once."""
        limit = (math.inf if before_s is None
                 else math.floor(before_s / self.interval_s + 1e-9))
        keys = sorted(k for k in self._buckets if k[0] < limit)
        out = []
        for k, index in keys:
            b = self._buckets.pop((k, index))
            out.append(ReplicaSlice(round(k * self.interval_s, 3), self.interval_s, index,
                                    b.requests, b.errors, b.hist.encode()))
        if keys:
            self._emitted_below = max(self._emitted_below, keys[-1][0] + 1)
        if before_s is not None:
            self._emitted_below = max(self._emitted_below, int(limit))
        return out
