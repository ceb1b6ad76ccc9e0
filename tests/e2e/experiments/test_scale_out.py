"""The scale-out experiment end to end: throughput grows with the replicas behind nginx,
and 4 workers sharing one socket fall short of 4 replicas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.topology.services import find_components
from tests.conftest import REPO, run_lab


@pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")
def test_throughput_grows_with_replicas(db_path: Path) -> None:
    res = run_lab("run", "experiments/scale-out.toml", "--variant", "replicas-1", "--variant", "replicas-4",
                  "--variant", "workers-4-shared-socket", "--duration", "3s", "--warmup", "1s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert all(r["status"] == "completed" for r in doc["runs"]), res.stderr
    rps = {name: run["summary"]["throughput_rps"] for name, run in runs.items()}
    # 100 req/s per replica (2 slots × 20 ms, a sleep); measured 94 / 189 / 379 req/s.
    assert rps["replicas-4"] >= 2.8 * rps["replicas-1"], rps
    assert rps["replicas-4"] <= 4 * 100 * 1.1, rps
    for name in ("replicas-1", "replicas-4"):
        replicas = runs[name]["replicas"]
        assert len(replicas) == int(name[-1])
        # least_conn over equal replicas: equal shares, within a few percent.
        assert all(abs(r["share"] - 1 / len(replicas)) < 0.1 for r in replicas), replicas
    # The same capacity on one shared socket: the kernel hands each of the 40 keep-alive
    # connections to whichever worker wakes first, and a worker with no connection adds
    # nothing (one with two or more is saturated: 2 slots). The split is a figure the
    # target reports; the throughput follows it (measured: 299/283/0/0 → 172 req/s,
    # 317/287/275/0 → 257, 301/291/289/140 → 317; never above 4 replicas behind nginx).
    shared = runs["workers-4-shared-socket"]
    assert "replicas" not in shared
    info = shared["target_stats"]["info"]
    assert info["workers"] == "4"
    split = [int(n) for n in info["requests_by_worker"].split("/")]
    assert len(split) <= 4 and split == sorted(split, reverse=True), split
    busy = sum(1 for n in split if n > 0.05 * sum(split))
    assert rps["workers-4-shared-socket"] <= 100 * 1.1 * busy, (split, rps)
    assert rps["workers-4-shared-socket"] <= 1.05 * rps["replicas-4"], rps
    share = shared["target_stats"]["gauges"]["busiest_worker_share"]["last"]
    assert share == pytest.approx(split[0] / sum(split), abs=0.02)
