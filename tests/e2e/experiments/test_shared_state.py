"""shared-state end to end: the experiment through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_lab
from tests.figures import target_stat

# ------------------------------------------------------- the experiment, via the CLI


def test_shared_state_experiment(db_path: Path) -> None:
    # Lock-bound, no warm-up needed: 2 s per variant, all of it measured. Like this (3 runs
    # on 2 cores): 430–441 / 1,582–1,673 / 4,563–5,291 req/s.
    res = run_lab("run", "experiments/shared-state.toml", "--duration", "2s", "--warmup", "0s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    runs = {r["variant"]: r for r in json.loads(res.stdout)["runs"]}
    assert list(runs) == ["global", "sharded-4", "sharded-32"]
    assert all(r["status"] == "completed" for r in runs.values()), runs
    glob, four, many = (runs[name]["summary"] for name in runs)
    assert all(s["error_rate"] == 0 for s in (glob, four, many))

    # Measured (12 s runs): 426 / 1,658 / 4,866 req/s; p99 156 / 93 / 27 ms.
    # The global lock caps throughput near 1 / HOLD_MS (2 ms) = 500 req/s.
    assert glob["throughput_rps"] <= 520
    assert four["throughput_rps"] >= 2 * glob["throughput_rps"], (glob, four)
    assert many["throughput_rps"] >= 3 * glob["throughput_rps"], (glob, many)
    assert many["latency_ms"]["p99"] < glob["latency_ms"]["p99"]
    assert four["latency_ms"]["p50"] < glob["latency_ms"]["p50"]

    # Contention, measured inside: mean lock wait per request ~92 ms / 22 ms / 1.8 ms.
    wait = {name: target_stat(r, "per_request", "lock_wait_us") for name, r in runs.items()}
    assert wait["global"] > 3 * wait["sharded-4"] > 3 * wait["sharded-32"], wait
    assert wait["global"] > 40_000, wait
    # Nothing lost: one increment per request, exactly, whatever was in flight at the
    # window's edges (a request's counters are counted with its write).
    for name, run in runs.items():
        assert target_stat(run, "per_request", "increments") == 1, name
