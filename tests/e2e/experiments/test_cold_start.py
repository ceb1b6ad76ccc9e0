"""The cold-start experiment end to end: scaled to zero, the first requests of a burst
wait for a replica to start (held by the activator, none lost) and the idle seconds cost
nothing; one warm replica answers them at once and pays for the idle seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.topology.services import find_components
from tests.conftest import REPO, run_lab


@pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")
def test_scale_to_zero_trades_a_cold_start_for_replica_seconds(db_path: Path, tmp_path: Path) -> None:
    # The experiment file with a 1 s scale-down window instead of 2 s, and --duration 7s
    # squeezing its 28 s schedule: bursts of 0.5 s, idle gaps of 2.5 s, longer than the
    # window and a 0.5 s sync.
    body = (REPO / "experiments" / "cold-start.toml").read_text()
    assert 'scale_down_window = "2s"' in body
    path = tmp_path / "cold-start.toml"
    path.write_text(body.replace('scale_down_window = "2s"', 'scale_down_window = "1s"'))
    res = run_lab("run", str(path), "--duration", "7s", "--warmup", "0s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert all(r["status"] == "completed" for r in doc["runs"]), res.stderr
    zero, warm = runs["scale-to-zero"], runs["keep-one-warm"]
    # Nothing is lost: the activator holds requests until a replica answers.
    assert zero["summary"]["errors"] == 0 and warm["summary"]["errors"] == 0
    wakes = [e for e in zero["autoscale_events"] if e["applied"] and e["current"] == 0]
    sleeps = [e for e in zero["autoscale_events"] if e["applied"] and e["desired"] == 0]
    assert len(wakes) >= 2 and len(sleeps) >= 1, zero["autoscale_events"]
    assert all(e["inputs"]["demand"] for e in wakes)
    assert not any(e["desired"] == 0 for e in warm["autoscale_events"])
    # The requests that arrived at zero replicas waited for a start (a new Python process:
    # measured 0.4–1 s here); a warm replica answers within its 20 ms service time.
    assert zero["fleet"]["unrouted"] >= 1
    assert zero["fleet"]["unrouted_max_ms"] >= 100
    assert zero["summary"]["latency_ms"]["max"] >= 3 * warm["summary"]["latency_ms"]["max"]
    assert warm["fleet"]["unrouted"] == 0
    # And the idle seconds cost nothing (measured 13.2 vs 28.0 replica-seconds over 28 s).
    assert zero["fleet"]["replica_seconds"] < 0.9 * warm["fleet"]["replica_seconds"], (
        zero["fleet"], warm["fleet"])
