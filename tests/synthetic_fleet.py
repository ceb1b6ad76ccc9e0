"""A run behind a balancer without a run: replicas, their traffic per interval, the replica
counts and the autoscaler's decisions as engine events, written through the store's own
recorder like a real run's (see ``tests.synthetic`` for the rest of a run's events).

The fleet of ``FLEET_SECONDS`` seconds: replicas 0 and 1 from before the load; the
autoscaler scales 2 → 3 at 1.0 s (replica 2 starts at 1.1 s, is ready at 1.6 s), holds at
2.0 s and 3.0 s, and scales 3 → 2 at 4.0 s (replica 2 ends at 4.5 s). Replica ``r``
answers every request of an interval in ``replica_ms(r)`` ms, so its p50 and p99 are known.
"""

from __future__ import annotations

from pathlib import Path

from lab.events import (
    Event,
    ReplicaChanged,
    ReplicaCount,
    ReplicaTraffic,
    ResourceSample,
    RunFinished,
    ScaleDecision,
)
from lab.load.histogram import LatencyHistogram
from lab.plan import RunPlan, plan_runs
from lab.spec import load_experiment
from lab.store import Store, StoreRecorder
from tests.conftest import REPO, write_experiment
from tests.synthetic import T0, record, summary_of, synthetic_events

FLEET_EXPERIMENT = f"""
    [experiment]
    title = "replicas"
    [target]
    app = "targets.replicas:app"
    app_dir = "{REPO}"
    replicas = 2
    [balancer]
    method = "least_conn"
    [autoscale]
    metric = "utilization"
    target = 0.6
    min_replicas = 1
    max_replicas = 3
    [load]
    vus = 4
    duration = "6s"
    warmup = "0s"
    [[load.requests]]
    path = "/work"
"""
PLAIN_EXPERIMENT = """
    [experiment]
    title = "plain"
    [target]
    app = "targets.testing:app"
    [load]
    vus = 2
    duration = "6s"
    warmup = "0s"
    [[load.requests]]
    path = "/fast"
"""
FLEET_SECONDS = 6
REQUESTS_PER_REPLICA = 50
"""Requests each ready replica answers per interval."""
UNROUTED_AT = 5
"""The interval in which the balancer answers 3 requests itself (no replica: 503)."""


def replica_ms(replica: int) -> float:
    """How long replica ``replica`` takes to answer, ms."""
    return 10.0 * (replica + 1)


def _hist(ms: float, n: int) -> bytes:
    hist = LatencyHistogram()
    hist.add_counts({int(ms * 1000): n})
    return hist.encode()


def fleet_plan(folder: Path) -> RunPlan:
    """The plan of the synthetic fleet's experiment (nothing is started)."""
    return plan_runs(load_experiment(write_experiment(folder, FLEET_EXPERIMENT, name="fleet")))[0]


def fleet_events(key: str) -> list[Event]:
    """The replica events of the synthetic fleet (no run events: add them from
    ``tests.synthetic.synthetic_events``)."""
    alive = {0: (-1.0, -0.5, None), 1: (-1.0, -0.5, None), 2: (1.1, 1.6, 4.5)}
    events: list[Event] = []
    for r, (start, ready, end) in alive.items():
        state = "stopped"
        events.append(ReplicaChanged(key, r, 4000 + r, f"127.0.0.1:{41000 + r}", state, start, ready,
                                     end if end is not None else FLEET_SECONDS + 0.2))
    for k in range(FLEET_SECONDS):
        t = float(k)
        serving = [r for r, (_s, ready, end) in alive.items()
                   if ready <= t and (end is None or end >= t + 1)]
        for r in serving:
            events.append(ReplicaTraffic(key, t, 1.0, r, REQUESTS_PER_REPLICA, 1 if r == 1 else 0,
                                         _hist(replica_ms(r), REQUESTS_PER_REPLICA)))
        if k == UNROUTED_AT:
            events.append(ReplicaTraffic(key, t, 1.0, -1, 3, 3, _hist(0.1, 3)))
        desired = 3 if 1 <= k < 4 else 2
        ready = len([r for r, (_s, rd, end) in alive.items()
                     if rd <= t + 1 and (end is None or end > t + 1)])
        events.append(ReplicaCount(key, t + 1, desired, ready, 0, 0))
        for r in (0, 1, 2):
            if r in serving or (r == 2 and 1 <= k < 5):
                events.append(ResourceSample(key, t + 1, "replica", 4000 + r, 20.0, 0.2 * (t + 1),
                                             30_000_000 + r, 2, 10, detail={"replica": r}))
        events.append(ResourceSample(key, t + 1, "balancer", 3900, 5.0, 0.05 * (t + 1), 8_000_000, 1, 8))
    decisions = [(1.0, 2, 3, True, "ratio 1.30 > 1.1: 2 → 3"), (2.0, 3, 3, False, "within tolerance"),
                 (3.0, 3, 3, False, "within tolerance"), (4.0, 3, 2, True, "ratio 0.50 < 0.9: 3 → 2")]
    for t_s, current, desired, applied, reason in decisions:
        events.append(ScaleDecision(key, t_s, current, "utilization", 0.6 * desired / current,
                                    desired / current, desired, desired, applied, reason,
                                    {"ready": current}))
    return events


def record_fleet_run(folder: Path, db: Path, started_at: float = T0) -> int:
    """Store one completed synthetic run behind a balancer; returns its id."""
    plan = fleet_plan(folder)
    key = "fleet-0"
    events = synthetic_events(plan, key, 100, 20.0, FLEET_SECONDS, started_at) + fleet_events(key)
    with Store(db) as store:
        recorder = StoreRecorder(store)
        for event in events:
            recorder(event)
        recorder(RunFinished(key, "completed", None, started_at + FLEET_SECONDS + 0.5,
                             summary_of(events, 0, 0.5, 60_000_000, None), {}))
        return store.list_runs(limit=1)[0].id


def record_fleet_and_plain(folder: Path) -> Path:
    """A results database in ``folder`` with run 1, the synthetic fleet, and run 2, a plain
    run of the test target without a balancer; returns its path."""
    db = folder / "results.db"
    record_fleet_run(folder, db)
    plan = plan_runs(load_experiment(write_experiment(folder, PLAIN_EXPERIMENT, name="plain")))[0]
    events = synthetic_events(plan, "plain-0", 80, 10.0, FLEET_SECONDS, T0 + 100)
    with Store(db) as store:
        record(store, events, "completed", None, T0 + 107, summary_of(events, 0, 0.4, 50_000_000, None))
    return db
