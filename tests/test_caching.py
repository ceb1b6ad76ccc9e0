"""The caching experiment end to end, briefly: the cache must visibly win."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_lab


def test_caching_experiment_shows_the_cache_winning(db_path: Path) -> None:
    # The redis variant has its own test (tests/experiments/test_caching_redis.py).
    res = run_lab("run", "experiments/caching.toml", "--duration", "4s", "--warmup", "1s",
                  "--variant", "no-cache", "--variant", "lru",
                  "--db", str(db_path), cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stderr
    table = res.stdout
    assert "no-cache" in table and "lru" in table
    assert "completed" in table and "%" in table

    # lab compare reproduces the same tables from results.db; lab run adds what to look for.
    again = run_lab("compare", "1", "2", "--db", str(db_path))
    assert again.returncode == 0, again.stderr
    assert table.startswith(again.stdout)
    assert "What to look for" in table[len(again.stdout):]

    doc = json.loads(run_lab("compare", "1", "2", "--db", str(db_path), "--format", "json").stdout)
    none, lru = (r["summary"] for r in doc["runs"])
    assert [r["status"] for r in doc["runs"]] == ["completed", "completed"]
    # Measured on 2 cores: ~12x over 20 s. A short run on a busy CI machine still shows 2x.
    assert lru["throughput_rps"] >= 2 * none["throughput_rps"], (none, lru)
    assert lru["latency_ms"]["p95"] < none["latency_ms"]["p95"]
    assert lru["target_cpu_s_per_1k"] < none["target_cpu_s_per_1k"]
    assert lru["cache_hit_ratio"] > 0.5
    assert none["cache_hit_ratio"] == 0
