"""The caching experiment's redis variant: a real redis-server as the cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lab.topology.targets import free_port
from targets import catalog
from tests.asgi import running
from tests.conftest import lab_in_process, run_lab
from tests.e2e.conftest import CachingRun

HAVE_REDIS = shutil.which("redis-server") is not None


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (no persistence), ended after."""
    if not HAVE_REDIS:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def test_redis_cache_hits_and_misses(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    for name in ("CACHE_SIZE", "CACHE_TTL_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CACHE", "redis")
    monkeypatch.setenv("CATALOG_ITEMS", "300")
    monkeypatch.setenv("REDIS_URL", redis_url)
    async with running(catalog.app) as client:
        first = await client.get("/products/7")
        again = await client.get("/products/7")
        other = await client.get("/products/8")
        missing = await client.get("/products/99999")
        stats = (await client.get("/stats")).json()
    assert [r.headers.get("x-cache") for r in (first, again, other)] == ["miss", "hit", "miss"]
    assert again.content == first.content  # the page comes back byte for byte from redis
    assert missing.status_code == 404
    assert (stats["cache"], stats["cache_hits"], stats["cache_misses"]) == ("redis", 1, 3)
    assert stats["cache_size"] == 2  # 404s are not cached
    with redis.Redis.from_url(redis_url) as direct:
        keys = direct.keys("catalog:300:*")
        assert len(keys) == 2
        assert 0 < direct.pttl(keys[0]) <= 60_000  # entries expire with CACHE_TTL_S (default 60 s)


async def test_every_start_begins_with_a_cold_cache(monkeypatch: pytest.MonkeyPatch,
                                                    redis_url: str) -> None:
    monkeypatch.setenv("CACHE", "redis")
    monkeypatch.setenv("CATALOG_ITEMS", "300")
    monkeypatch.setenv("REDIS_URL", redis_url)
    for _ in range(2):
        async with running(catalog.app) as client:
            assert (await client.get("/products/5")).headers["x-cache"] == "miss"


def test_redis_variant_is_skipped_without_redis_server(db_path: Path, tmp_path: Path) -> None:
    # An empty PATH hides redis-server from the lab (the target runs as `python -m uvicorn`).
    res = run_lab("run", "experiments/caching.toml", "--variant", "redis", "--duration", "1s",
                  "--format", "json", "--db", str(db_path), env={"PATH": str(tmp_path)}, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["runs"] == []
    [skipped] = doc["skipped"]
    assert skipped["variant"] == "redis"
    assert "redis-server" in skipped["reason"] and "install" in skipped["reason"]


@pytest.mark.skipif(not HAVE_REDIS, reason="redis-server is not installed")
def test_redis_variant_beats_no_cache(caching_run: CachingRun) -> None:
    # The run tests/test_caching.py reads too: no-cache, lru, redis, 4 s each, 1 s warm-up.
    res = caching_run.res
    assert res.returncode == 0, res.stderr
    assert "skipping variant" not in res.stderr, res.stderr
    assert caching_run.variants == ("no-cache", "lru", "redis")
    ids = [str(i) for i in caching_run.run_ids]
    doc = json.loads(lab_in_process("compare", *ids, "--db", str(caching_run.db), "--format", "json").stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert [r["status"] for r in doc["runs"]] == ["completed"] * 3, res.stderr
    none, cached = runs["no-cache"]["summary"], runs["redis"]["summary"]
    # Measured on 2 cores over 15 s: 24x throughput (134 -> 3,274 req/s), p95 274 -> 28 ms,
    # hit ratio 98 %. Each cached request waits for redis-server to be scheduled, so on a
    # busy machine the gain shrinks (4 s runs: 2.9x beside two busy loops, 2.0x beside
    # other suites' runs); the direction survives, and the target's own counters say why.
    assert cached["throughput_rps"] > none["throughput_rps"], (none, cached)
    # p95 of a 3 s run is dominated by the cold misses of the first second; the direction
    # is what survives a busy CI machine (measured over 15 s: 252 → 31.8 ms).
    assert cached["latency_ms"]["p95"] < none["latency_ms"]["p95"]
    assert cached["target_cpu_s_per_1k"] < none["target_cpu_s_per_1k"], (none, cached)
    # 98 % over 15 s; a 3 s window on a busy machine holds proportionally more of the cold
    # misses (78 % seen), so the bound only separates a working cache from a broken one.
    assert cached["cache_hit_ratio"] > 0.5, (cached, runs["redis"].get("target_stats"))
    assert none["cache_hit_ratio"] == 0, (none, runs["no-cache"].get("target_stats"))
    assert cached["error_rate"] == 0
