"""The stateless-sessions experiment end to end: a replica killed mid-run loses the
sessions it held in memory (sticky balancing), sessions in memory behind least_conn are
lost all the time, and sessions in Redis are never lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.topology.services import find_components
from tests.conftest import REPO, run_lab

FOUND = find_components()


@pytest.mark.skipif(not (FOUND["nginx"].usable and FOUND["redis"].usable),
                    reason="needs nginx and redis-server")
def test_only_sessions_in_memory_are_lost(db_path: Path) -> None:
    res = run_lab("run", "experiments/stateless-sessions.toml", "--duration", "4s", "--warmup", "1s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert all(r["status"] == "completed" for r in doc["runs"]), res.stderr
    sticky, scattered, redis = (runs[v] for v in ("memory-sticky", "memory-least-conn", "redis-least-conn"))
    for run in (sticky, scattered, redis):
        # The fault moved with --duration: 5 s of 10 s → 2 s of 4 s; replica 1 was
        # killed there and left the balancer, the others served to the end.
        # A replacement (the next number, 3) starts in its place, as a ReplicaSet keeps
        # its count.
        states = {r["replica"]: r["state"] for r in run["replicas"]}
        assert states == {0: "stopped", 1: "killed", 2: "stopped", 3: "stopped"}, run["replicas"]
        killed, replacement = run["replicas"][1], run["replicas"][3]
        assert killed["ended_s"] == pytest.approx(2.0, abs=0.5)
        assert replacement["started_s"] >= killed["ended_s"] and replacement["ready_s"] is not None
        assert run["config"]["faults"][0]["at"] == 2.0
        [fault] = run["fleet"]["faults"]
        assert fault["applied"] and fault["replica"] == 1 and "killed" in fault["note"], fault
    # Redis: any replica knows any session; the kill loses none.
    assert redis["fleet"]["session_lost"] == 0, redis["fleet"]
    # Sticky memory sessions: lost only by the users of the killed replica, and again by
    # those the replacement takes over (consistent hashing moves only theirs): at most the
    # 30 users twice, at least one.
    assert 1 <= sticky["fleet"]["session_lost"] <= 60, sticky["fleet"]
    # Not sticky: a user's next request usually reaches a replica that never saw it.
    assert scattered["fleet"]["session_lost"] >= 10 * max(sticky["fleet"]["session_lost"], 10)
    # The target's own count of unknown sessions agrees with the generator's 401s.
    for run in (sticky, scattered):
        assert run["target_stats"]["rejected_401"] <= run["fleet"]["session_lost"]
