"""Synthetic replica events for TUI tests: a run behind a balancer without nginx.

Deterministic (no clock, no random): replicas 0 and 1 are ready from the start; the
autoscaler asks for a third at t = 4 s (replica 2 starts, ready at t = 6 s) and for two
again at t = 9 s (replica 1 is stopped); nginx answers 5 requests itself at t = 0 (no replica ready yet).
"""

from __future__ import annotations

from lab.events import (
    Event,
    ReplicaChanged,
    ReplicaCount,
    ReplicaTraffic,
    ResourceSample,
    ScaleDecision,
)
from lab.load.histogram import LatencyHistogram

FLEET_TOML = """\
[experiment]
title = "Replicas behind nginx"
question = "Does the live screen show the replicas?"

[target]
app = "targets.replicas:app"
replicas = 2
ready_path = "/health"

[balancer]
method = "least_conn"

[autoscale]
metric = "utilization"
target = 0.6
min_replicas = 1
max_replicas = 3

[load]
model = "closed"
vus = 8
duration = "12s"

[[load.requests]]
path = "/work"
"""


def _histogram(ms: float, n: int) -> bytes:
    hist = LatencyHistogram()
    for i in range(n):
        hist.record_s((ms + i % 5) / 1000)
    return hist.encode()


def fleet_events(key: str, seconds: int) -> list[Event]:
    """Replica, traffic, count, decision and resource events of ``seconds`` intervals."""
    events: list[Event] = [
        ReplicaChanged(key, 0, 5000, "127.0.0.1:41000", "ready", -1.0, -0.5, None),
        ReplicaChanged(key, 1, 5001, "127.0.0.1:41001", "ready", -1.0, -0.5, None),
        ReplicaTraffic(key, 0.0, 1.0, -1, 5, 5, b""),
    ]
    for k in range(seconds):
        t = float(k + 1)
        live = [0, 2] if k >= 9 else [0, 1, 2] if k >= 6 else [0, 1]
        if k == 4:
            events.append(ReplicaChanged(key, 2, 5002, "127.0.0.1:41002", "starting", 4.0, None, None))
        if k == 6:
            events.append(ReplicaChanged(key, 2, 5002, "127.0.0.1:41002", "ready", 4.0, 6.0, None))
        if k == 9:
            events.append(ReplicaChanged(key, 1, 5001, "127.0.0.1:41001", "stopped", -1.0, -0.5, 9.0))
        for index in live:
            n = 300 + 40 * index
            events.append(ReplicaTraffic(key, float(k), 1.0, index, n, 0, _histogram(10.0 + 5 * index, 50)))
            events.append(ResourceSample(key, t, "replica", 5000 + index, 30.0 + 10 * index, 0.3 * t,
                                         40_000_000, 2, 12, detail={"replica": index}))
        events.append(ResourceSample(key, t, "balancer", 4000, 4.0, 0.04 * t, 8_000_000, 2, 20))
        desired = 3 if 4 <= k < 9 else 2
        ready = 3 if 6 <= k < 9 else 2
        events.append(ReplicaCount(key, t, desired, ready, 1 if 4 <= k < 6 else 0, 0))
        wanted = 3 if 3 <= k < 8 else 2
        events.append(ScaleDecision(key, t, 3 if 4 <= k <= 8 else 2, "utilization", 0.7, 1.2,
                                    wanted, wanted, k in (3, 8), "scale", {}))
    return events
