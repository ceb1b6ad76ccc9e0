"""The autoscaling experiment end to end, at a steady 500 req/s (2.5 × one replica):
one fixed replica queues, the HPA-style autoscaler adds replicas and keeps the tail far
lower, at a cost in replica-seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.topology.services import find_components
from tests.conftest import REPO, run_lab


@pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")
def test_the_autoscaler_keeps_the_tail_down(db_path: Path, tmp_path: Path) -> None:
    # The experiment file as it is, but for the request timeout: one replica's queue would
    # hold the run 10 s past its end waiting for it.
    body = (REPO / "experiments" / "autoscaling.toml").read_text()
    assert 'timeout = "10s"' in body
    path = tmp_path / "autoscaling.toml"
    path.write_text(body.replace('timeout = "10s"', 'timeout = "4s"'))
    res = run_lab("run", str(path), "--variant", "fixed-1", "--variant", "hpa",
                  "--rate", "500", "--duration", "6s", "--warmup", "1s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert all(r["status"] == "completed" for r in doc["runs"]), res.stderr
    fixed, hpa = runs["fixed-1"], runs["hpa"]
    # 200 req/s per replica (4 slots × 20 ms, a sleep): one replica's queue grows by 300
    # requests a second; the autoscaler doubles the replicas within a sync or two, and
    # serves the backlog of those first seconds (its p99; measured over 7 s with a 10 s
    # timeout: p50 47 ms vs 5.3 s, p99 2.9 s vs 9.9 s).
    # With a 4 s timeout one replica's queue shows as timeouts (measured: 2,316 ms p50 and
    # most requests timed out, against 49 ms and none).
    fixed_ms, hpa_ms = fixed["summary"]["latency_ms"], hpa["summary"]["latency_ms"]
    assert fixed_ms["p50"] >= 10 * hpa_ms["p50"], (fixed_ms, hpa_ms)
    assert fixed["summary"]["error_rate"] >= 0.2, fixed["summary"]
    assert hpa["summary"]["error_rate"] <= fixed["summary"]["error_rate"] / 4, hpa["summary"]
    assert hpa["summary"]["throughput_rps"] >= 1.5 * fixed["summary"]["throughput_rps"]
    ups = [e for e in hpa["autoscale_events"] if e["applied"] and e["desired"] > e["current"]]
    assert ups, hpa["autoscale_events"]
    assert all(e["metric"] == "utilization" for e in hpa["autoscale_events"])
    assert "autoscale_events" in fixed and fixed["autoscale_events"] == []
    assert max(c["ready"] for c in hpa["fleet"]["replica_counts"]) >= 3
    assert hpa["fleet"]["replica_seconds"] > 1.5 * fixed["fleet"]["replica_seconds"]
    # Judged every second against the experiment's p99 objective (100 ms): one replica
    # never meets it once overloaded; the autoscaler recovers within the run.
    # (How soon the autoscaler recovers depends on how fast a new Python process starts,
    # which a busy machine slows: only the direction is asserted.)
    assert fixed["slo"]["slo_p99_ms"] == 100
    def above(run: dict) -> float:
        return run["slo"]["seconds_above"] / run["slo"]["seconds_measured"]
    assert above(fixed) >= 0.5 and above(fixed) >= above(hpa), (fixed["slo"], hpa["slo"])
    assert hpa["slo"]["longest_above_s"] <= hpa["slo"]["seconds_above"]
    assert hpa["config"]["autoscale"]["sync_period"] == 1.0
    assert hpa["config"]["autoscale"]["scale_down_window"] == 10.0
    assert hpa["config"]["autoscale_note"].startswith("sync_period 1s (HPA: 15s), scale_down_window 10s")
    assert hpa["fleet"]["scale_events"] == len([e for e in hpa["autoscale_events"] if e["applied"]]) >= 1
