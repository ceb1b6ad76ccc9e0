"""The load-balancing experiment end to end: three replicas behind a real nginx, one of
them 5× slower; least_conn serves several times what round robin does, and every figure
per replica adds up to what the run measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.store import Store
from lab.topology.services import find_components
from tests.conftest import REPO, lab_in_process, run_lab

HAVE_NGINX = find_components()["nginx"].usable


@pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed")
def test_least_conn_beats_round_robin_with_a_slow_replica(db_path: Path) -> None:
    res = run_lab("run", "experiments/load-balancing.toml", "--variant", "round_robin",
                  "--variant", "least_conn", "--duration", "3s", "--warmup", "1s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert [r["status"] for r in doc["runs"]] == ["completed", "completed"], res.stderr
    rr, lc = runs["round_robin"], runs["least_conn"]
    # Capacity 100 req/s per fast replica, 20 for the slow one (a sleep: CPU-independent).
    # Round robin runs at 3 × the slow one's pace (measured 52 req/s over 8 s); least_conn
    # sends the slow one little (measured 204 req/s).
    assert lc["summary"]["throughput_rps"] >= 2 * rr["summary"]["throughput_rps"], (rr, lc)
    for run in (rr, lc):
        replicas = run["replicas"]
        assert [r["replica"] for r in replicas] == [0, 1, 2]
        assert all(r["state"] == "stopped" for r in replicas), replicas
        assert sum(r["share"] for r in replicas) == pytest.approx(1.0, abs=5e-4)  # each rounded to 4 places
        # The balancer's log and the generator count the same requests; at the edges of
        # the window nginx's clock and the client's differ by the response's way back.
        served = sum(r["requests"] for r in replicas)
        assert abs(served - run["summary"]["requests"]) <= 0.03 * run["summary"]["requests"] + 3, run
        assert run["fleet"]["replica_seconds"] > 3 * 3.0
        assert run["fleet"]["balancer_cpu_s_per_1k"] is not None
        assert run["config"]["balancer"]["method"] == run["variant"]
    # Round robin gives each replica a third of the requests; the slow one completes its
    # share late (it holds most of the 30 VUs' requests when the load stops, and finishes
    # them in the window's last second), so in a short run its share is a third or more.
    shares = {r["replica"]: r["share"] for r in rr["replicas"]}
    assert shares[0] >= 0.28 and all(s >= 0.2 for s in shares.values()), shares
    slow, fast = lc["replicas"][0], lc["replicas"][1:]
    assert slow["share"] < 0.2, lc["replicas"]
    # Each replica's own latency, as nginx measured it: the slow one's p50 is well above
    # the fast ones' (it holds as many requests but finishes each 5× later).
    assert all(slow["p50_ms"] > 2 * f["p50_ms"] for f in fast), lc["replicas"]
    with Store(db_path) as store:
        for run in (rr, lc):
            # Over the whole run (warm-up included) the per-replica rows add up exactly to
            # what the generator counted: every request went through nginx's log once.
            whole = sum(iv.requests for iv in store.intervals(run["id"]))
            assert sum(s.requests for s in store.replica_intervals(run["id"])) == whole
            roles = {r.role for r in store.resources(run["id"])}
            assert {"replica", "balancer", "target"} <= roles
            per_replica = {r.detail.get("replica") for r in store.resources(run["id"], "replica")}
            assert per_replica == {0, 1, 2}
    # lab compare of the stored runs carries the same per-replica figures as lab run did.
    ids = [str(rr["id"]), str(lc["id"])]
    again = lab_in_process("compare", *ids, "--format", "json", "--db", str(db_path), cwd=REPO)
    assert again.returncode == 0, again.stderr
    for before_run, stored in zip(doc["runs"], json.loads(again.stdout)["runs"], strict=True):
        for key in ("replicas", "fleet", "autoscale_events"):
            assert stored.get(key) == before_run[key], (key, stored.get(key))
    table = lab_in_process("compare", *ids, "--db", str(db_path), cwd=REPO)
    assert table.returncode == 0, table.stderr
    assert f"run {lc['id']} (least_conn) by replica" in table.stdout, table.stdout
    # No nginx or replica outlives the run: tests/conftest.py fails any test whose lab
    # leaves one (it follows each nginx's owner file to the lab that started it).


def test_a_balancer_variant_is_skipped_without_nginx(db_path: Path, tmp_path: Path) -> None:
    res = run_lab("run", "experiments/load-balancing.toml", "--variant", "least_conn",
                  "--duration", "1s", "--format", "json", "--db", str(db_path),
                  env={"LAB_NGINX": str(tmp_path / "no-nginx")}, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["runs"] == []
    [skipped] = doc["skipped"]
    assert skipped["variant"] == "least_conn"
    assert "LAB_NGINX" in skipped["reason"] and "apt-get install nginx" in skipped["reason"]
