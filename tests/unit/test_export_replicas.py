"""``lab export`` of runs behind a balancer: each replica's traffic per interval with its
p50/p99 worked out from the stored histograms, the replica counts, the autoscaler's
decisions, and the replica of each resource reading; runs without a balancer unchanged.

The runs are synthetic (``tests.synthetic_fleet``: run 1 behind a balancer, run 2 not),
written through the engine's own StoreRecorder; a real run is exported in
tests/e2e/test_replica_outputs.py.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from lab.report.export import render_export
from lab.store import Store
from tests.synthetic_fleet import (
    FLEET_SECONDS,
    REQUESTS_PER_REPLICA,
    UNROUTED_AT,
    record_fleet_and_plain,
    replica_ms,
)


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1: the synthetic fleet (2 → 3 → 2 replicas); run 2: a plain run without a balancer."""
    return record_fleet_and_plain(tmp_path_factory.mktemp("fleet"))


def _csv(db: Path, what: str, *ids: int) -> list[dict[str, str]]:
    with Store(db, readonly=True) as store:
        return list(csv.DictReader(io.StringIO(render_export(store, list(ids), "csv", what))))


def test_replica_intervals_csv_gives_each_replicas_traffic_and_percentiles(fleet_db: Path) -> None:
    rows = _csv(fleet_db, "replica_intervals", 1, 2)
    assert {r["run_id"] for r in rows} == {"1"}  # run 2 had no balancer
    assert list(rows[0]) == ["run_id", "variant", "t_s", "duration_s", "replica", "requests", "errors",
                             "p50_ms", "p99_ms", "max_ms"]
    served = [r for r in rows if r["replica"] != "-1"]
    for r in served:
        ms = replica_ms(int(r["replica"]))
        # HDR histograms keep three significant digits.
        for key in ("p50_ms", "p99_ms", "max_ms"):
            assert float(r[key]) == pytest.approx(ms, rel=1e-3)
        assert int(r["requests"]) == REQUESTS_PER_REPLICA
    # Replica 2 served while it was ready (1.6 s to 4.5 s): intervals 2 and 3.
    assert sorted(float(r["t_s"]) for r in served if r["replica"] == "2") == [2.0, 3.0]
    unrouted = [r for r in rows if r["replica"] == "-1"]
    assert [(float(r["t_s"]), r["requests"], r["errors"]) for r in unrouted] == [(UNROUTED_AT, "3", "3")]
    # The rows add up to the per-replica figures the run's replicas table shows.
    with Store(fleet_db, readonly=True) as store:
        from lab.session import fleets_of

        fleet = fleets_of(store, store.get_runs([1]))[1]
    for figures in fleet.figures.replicas:
        assert sum(int(r["requests"]) for r in served if r["replica"] == str(figures.replica)) \
            == figures.requests
    assert sum(int(r["requests"]) for r in unrouted) == fleet.figures.unrouted


def test_replica_counts_and_decisions_csv(fleet_db: Path) -> None:
    counts = _csv(fleet_db, "replica_counts", 1, 2)
    assert [(r["t_s"], r["desired"], r["ready"]) for r in counts] == [
        ("1.0", "2", "2"), ("2.0", "3", "3"), ("3.0", "3", "3"), ("4.0", "3", "3"),
        ("5.0", "2", "2"), ("6.0", "2", "2")]
    assert len(counts) == FLEET_SECONDS and {r["run_id"] for r in counts} == {"1"}
    decisions = _csv(fleet_db, "autoscale_events", 1)
    assert [(r["t_s"], r["current"], r["desired"], r["applied"]) for r in decisions] == [
        ("1.0", "2", "3", "true"), ("2.0", "3", "3", "false"), ("3.0", "3", "3", "false"),
        ("4.0", "3", "2", "true")]
    assert decisions[0]["metric"] == "utilization" and decisions[0]["reason"] == "ratio 1.30 > 1.1: 2 → 3"


def test_resources_csv_gains_the_replica_column_and_keeps_the_others(fleet_db: Path) -> None:
    rows = _csv(fleet_db, "resources", 1, 2)
    assert list(rows[0]) == ["run_id", "variant", "t_s", "role", "service", "pid", "cpu_percent",
                             "cpu_seconds", "rss_bytes", "num_threads", "num_fds", "processes", "replica"]
    replica_rows = [r for r in rows if r["role"] == "replica"]
    assert {r["replica"] for r in replica_rows} == {"0", "1", "2"}
    assert all(r["pid"] == str(4000 + int(r["replica"])) for r in replica_rows)
    assert all(r["replica"] == "" for r in rows if r["role"] != "replica")
    assert any(r["role"] == "balancer" for r in rows)


def test_json_export_adds_the_replica_series_to_runs_behind_a_balancer(fleet_db: Path) -> None:
    with Store(fleet_db, readonly=True) as store:
        doc = json.loads(render_export(store, [1, 2], "json"))
    fleet, plain = doc["runs"]
    for key in ("replicas", "replica_intervals", "replica_counts", "autoscale_events"):
        assert key in fleet and key not in plain
    assert [r["replica"] for r in fleet["replicas"]] == [0, 1, 2]
    first = fleet["replica_intervals"][0]
    assert first == {"t_s": 0.0, "duration_s": 1.0, "replica": 0, "requests": REQUESTS_PER_REPLICA,
                     "errors": 0, "p50_ms": pytest.approx(10.0, rel=1e-3),
                     "p99_ms": pytest.approx(10.0, rel=1e-3), "max_ms": pytest.approx(10.0, rel=1e-3)}
    assert all("histogram" not in r for r in fleet["replica_intervals"])
    assert [c["ready"] for c in fleet["replica_counts"]] == [2, 3, 3, 3, 2, 2]
    assert [d["applied"] for d in fleet["autoscale_events"]] == [True, False, False, True]
    assert fleet["autoscale_events"][0]["inputs"] == {"ready": 2}
    assert {r["replica"] for r in fleet["resources"] if r["role"] == "replica"} == {0, 1, 2}
    assert all(r["replica"] is None for r in plain["resources"])
