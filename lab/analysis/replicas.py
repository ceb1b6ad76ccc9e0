"""Per-replica figures of a run behind a balancer, over its measured window.

Each replica's requests, share of the traffic, errors and latency percentiles come from
the per-interval rows the balancer's access log gave (``replica_intervals``), merged as
HDR histograms; its CPU from the psutil readings of its own process tree. The shares add
up to 1 over the replicas that served requests; the requests add up to what the balancer
proxied in the window (the ones it answered itself, with no replica to send them to, are
``unrouted``).

``replica_seconds`` is the cost of a run the way a cloud bills it: for each replica, the
seconds it existed from the start of the load to the end of the measured window, summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from lab.load.histogram import LatencyHistogram

NO_REPLICA = -1


class _Replica(Protocol):
    @property
    def replica(self) -> int: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def started_s(self) -> float: ...
    @property
    def ready_s(self) -> float | None: ...
    @property
    def ended_s(self) -> float | None: ...


class _Slice(Protocol):
    @property
    def t_s(self) -> float: ...
    @property
    def replica(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def histogram(self) -> bytes: ...


class _Reading(Protocol):
    @property
    def t_s(self) -> float: ...
    @property
    def role(self) -> str: ...
    @property
    def cpu_seconds(self) -> float: ...
    @property
    def rss_bytes(self) -> int: ...
    @property
    def detail(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ReplicaFigures:
    """One replica over the measured window."""

    replica: int
    pid: int | None
    address: str
    state: str
    """How it ended: ``stopped`` (by the lab, at the end or on scale-down), ``killed`` (a
    fault), ``exited`` (on its own) or ``failed`` (never became ready)."""
    started_s: float
    ready_s: float | None
    ended_s: float | None
    requests: int
    share: float | None
    """Its fraction of the requests the replicas served in the window (None: none did)."""
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    cpu_s: float | None
    """CPU-seconds its process tree spent in the window (None: never read in it)."""
    cpu_s_per_1k: float | None
    peak_rss_bytes: int | None
    alive_s: float
    """Seconds it existed between the start of the load and the end of the window: the
    part of ``replica_seconds`` it adds."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class FleetFigures:
    """The replicas of one run, with what they add up to."""

    replicas: tuple[ReplicaFigures, ...]
    unrouted: int
    """Requests that arrived in the window while no replica was ready: answered 503 by
    nginx, or held by the activator until one was (scale from zero)."""
    unrouted_p50_ms: float | None
    unrouted_max_ms: float | None
    """Their latency as nginx measured it: with an activator, the cold start they waited."""
    replica_seconds: float
    balancer_cpu_s: float | None
    balancer_cpu_s_per_1k: float | None
    max_ready: int
    """The most replicas ready at once (from the per-interval counts)."""


def _cpu_in_window(readings: Sequence[_Reading], start_s: float, end_s: float) -> float | None:
    inside = [r for r in readings if start_s - 1e-9 <= r.t_s <= end_s + 1e-9]
    before = [r for r in readings if r.t_s < start_s - 1e-9]
    if not inside:
        return None
    first = before[-1] if before else inside[0]
    return max(0.0, inside[-1].cpu_seconds - first.cpu_seconds)


def fleet_figures(replicas: Sequence[_Replica], slices: Iterable[_Slice],
                  readings: Sequence[_Reading], ready_counts: Iterable[int],
                  start_s: float, end_s: float) -> FleetFigures:
    """Per-replica figures over ``[start_s, end_s)`` (seconds after the load began).

    Args:
        replicas: every replica of the run (``lab.store.ReplicaRow``).
        slices: what each replica served per interval (``lab.store.ReplicaIntervalRow``);
            an interval counts when it begins inside the window.
        readings: resource readings of roles ``replica`` (``detail["replica"]``) and
            ``balancer`` in time order (``lab.store.ResourceRow``).
        ready_counts: the ready replicas of each interval.
        start_s, end_s: the measured window.
    """
    hists: dict[int, LatencyHistogram] = {}
    requests: dict[int, int] = {}
    errors: dict[int, int] = {}
    for sl in slices:
        if not start_s - 1e-9 <= sl.t_s < end_s - 1e-9:
            continue
        requests[sl.replica] = requests.get(sl.replica, 0) + sl.requests
        errors[sl.replica] = errors.get(sl.replica, 0) + sl.errors
        hists.setdefault(sl.replica, LatencyHistogram()).merge_encoded(sl.histogram)
    served = sum(n for index, n in requests.items() if index != NO_REPLICA)
    by_replica: dict[int, list[_Reading]] = {}
    balancer: list[_Reading] = []
    for r in readings:
        if r.role == "replica" and isinstance(r.detail.get("replica"), int):
            by_replica.setdefault(int(r.detail["replica"]), []).append(r)
        elif r.role == "balancer":
            balancer.append(r)
    out = []
    for rep in sorted(replicas, key=lambda x: x.replica):
        n = requests.get(rep.replica, 0)
        hist = hists.get(rep.replica)
        own = by_replica.get(rep.replica, [])
        cpu = _cpu_in_window(own, start_s, end_s)
        rss = [r.rss_bytes for r in own if start_s - 1e-9 <= r.t_s <= end_s + 1e-9]
        # From the start of the load (t = 0; a replica started earlier counts from there)
        # to the end of the window: the span every variant of an experiment shares.
        alive = max(0.0, min(rep.ended_s if rep.ended_s is not None else end_s, end_s)
                    - max(rep.started_s, 0.0))
        has = hist is not None and hist.count > 0
        out.append(ReplicaFigures(
            replica=rep.replica, pid=rep.pid, address=rep.address, state=rep.state,
            started_s=rep.started_s, ready_s=rep.ready_s, ended_s=rep.ended_s,
            requests=n, share=(n / served) if served else None, errors=errors.get(rep.replica, 0),
            p50_ms=hist.percentile_ms(50) if has and hist else None,
            p99_ms=hist.percentile_ms(99) if has and hist else None,
            mean_ms=hist.mean_ms() if has and hist else None,
            cpu_s=cpu, cpu_s_per_1k=(cpu / n * 1000) if cpu is not None and n else None,
            peak_rss_bytes=max(rss) if rss else None, alive_s=alive,
        ))
    total = sum(requests.values())
    bal_cpu = _cpu_in_window(balancer, start_s, end_s)
    counts = list(ready_counts)
    cold = hists.get(NO_REPLICA)
    warm = cold is not None and cold.count > 0
    return FleetFigures(
        replicas=tuple(out), unrouted=requests.get(NO_REPLICA, 0),
        unrouted_p50_ms=cold.percentile_ms(50) if warm and cold else None,
        unrouted_max_ms=cold.max_ms() if warm and cold else None,
        replica_seconds=sum(r.alive_s for r in out),
        balancer_cpu_s=bal_cpu,
        balancer_cpu_s_per_1k=(bal_cpu / total * 1000) if bal_cpu is not None and total else None,
        max_ready=max(counts) if counts else len([r for r in out if r.ready_s is not None]),
    )


@dataclass(frozen=True)
class ReplicaInterval:
    """What one replica served in one interval, with its percentiles worked out from the
    interval's HDR histogram (``$upstream_response_time`` as nginx measured it)."""

    t_s: float
    """Start of the interval, seconds after the load began."""
    duration_s: float
    replica: int
    """Its index; -1 (``NO_REPLICA``): requests the balancer answered itself (503)."""
    requests: int
    """Answers in the interval, errors included."""
    errors: int
    """Statuses ≥ 500 and requests the client gave up on (nginx's 499)."""
    p50_ms: float | None
    """Median response time of the interval's answers, ms (None: no answer)."""
    p99_ms: float | None
    max_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class _TimedSlice(_Slice, Protocol):
    @property
    def duration_s(self) -> float: ...


def replica_intervals(slices: Iterable[_TimedSlice]) -> list[ReplicaInterval]:
    """Each stored ``(interval, replica)`` row with its p50, p99 and max (ms) from its own
    histogram, in the order given (``lab.store.ReplicaIntervalRow``)."""
    out = []
    for sl in slices:
        hist = LatencyHistogram.decode(sl.histogram)
        has = hist.count > 0
        out.append(ReplicaInterval(
            t_s=sl.t_s, duration_s=sl.duration_s, replica=sl.replica,
            requests=sl.requests, errors=sl.errors,
            p50_ms=hist.percentile_ms(50) if has else None,
            p99_ms=hist.percentile_ms(99) if has else None,
            max_ms=hist.max_ms() if has else None))
    return out
