"""The connection-reuse experiment: keep-alive vs a new TCP connection per request, against
a real server and end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lab.topology.targets import free_port
from tests.conftest import REPO, run_lab
from tests.figures import target_stat


def test_real_connections_are_told_apart() -> None:
    """Against uvicorn: a kept-alive client is one connection, fresh clients are one each."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "targets.echo:app", "--port", str(port),
                             "--log-level", "warning", "--app-dir", str(REPO)], cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(base + "/health", trust_env=False)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "echo target did not start"
                time.sleep(0.05)
        with httpx.Client(base_url=base, trust_env=False) as client:
            for _ in range(20):
                client.get("/ping")
        for _ in range(5):
            with httpx.Client(base_url=base, trust_env=False) as client:
                client.get("/ping")
        stats = httpx.get(base + "/stats", trust_env=False).json()
    finally:
        proc.terminate()
        proc.wait(10)
    assert stats == {"requests": 25, "connections": 6}


def test_connection_reuse_experiment_shows_the_cost_of_new_connections(db_path: Path) -> None:
    # No warm-up needed: 2 s per variant, all of it measured. Like this (3 runs on 2 cores):
    # 44.8k–46.6k vs 13.5k–14.8k req/s (3.0–3.3x), p50 0.31–0.33 → 1.07–1.17 ms.
    res = run_lab("run", "experiments/connection-reuse.toml", "--duration", "2s", "--warmup", "0s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert [r["status"] for r in doc["runs"]] == ["completed", "completed"], res.stderr
    reuse, fresh = runs["keep-alive"]["summary"], runs["new-connection"]["summary"]
    assert reuse["error_rate"] == 0 and fresh["error_rate"] == 0
    # Measured on 2 cores (15 s): ~35k vs ~12k req/s (2.9x), p50 0.40 → 1.3 ms.
    assert reuse["throughput_rps"] >= 1.5 * fresh["throughput_rps"], (reuse, fresh)
    assert fresh["latency_ms"]["p50"] > reuse["latency_ms"]["p50"], (reuse, fresh)
    # The target counts the connections it was reached over.
    assert target_stat(runs["keep-alive"], "per_request", "connections") < 0.01
    assert target_stat(runs["new-connection"], "per_request", "connections") > 0.95
