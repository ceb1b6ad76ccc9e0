"""shared-state: the lock logic of the target, its HTTP surface, then the experiment via the CLI."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from targets import shared_state
from targets.shared_state import SharedState, SharedStateConfig
from tests.conftest import REPO, run_lab
from tests.experiments.test_horizontal_scaling import running
from tests.figures import target_stat

_KNOBS = ("LOCK_MODE", "SHARDS", "HOLD_MS", "KEYS", "THREADPOOL_TOKENS")


@pytest.fixture
def state_env(monkeypatch: pytest.MonkeyPatch):
    for name in _KNOBS:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def _hammer(state: SharedState, keys: list[int], per_thread: int) -> float:
    """One thread per key, each incrementing its key ``per_thread`` times; wall seconds."""
    threads = [
        threading.Thread(target=lambda k=key: [state.increment(k) for _ in range(per_thread)])
        for key in keys
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


# ------------------------------------------------------------------ unit: the target


def test_config_defaults_and_errors(state_env) -> None:
    config = SharedStateConfig.from_env()
    assert config == SharedStateConfig("global", 16, 2.0, 1000, 40)
    assert config.lock_count == 1  # global ignores SHARDS
    state_env(LOCK_MODE="Sharded", SHARDS="8", HOLD_MS="0", KEYS="10")
    config = SharedStateConfig.from_env()
    assert (config.lock_mode, config.lock_count, config.hold_ms, config.keys) == ("sharded", 8, 0, 10)
    for name, bad in (("LOCK_MODE", "striped"), ("SHARDS", "0"), ("HOLD_MS", "-1"), ("KEYS", "x")):
        state_env(**{name: bad})
        with pytest.raises(ValueError, match=name):
            SharedStateConfig.from_env()
        state_env(LOCK_MODE="global", SHARDS="8", HOLD_MS="0", KEYS="10")


@pytest.mark.parametrize("mode", ["global", "sharded"])
def test_no_update_is_lost_under_threads(mode: str) -> None:
    state = SharedState(SharedStateConfig(lock_mode=mode, shards=4, hold_ms=0, keys=8))
    _hammer(state, [1, 1, 2, 3, 3, 3, 7, 8], per_thread=300)
    assert state.total() == 8 * 300
    assert state.read(3) == 900 and state.read(1) == 600
    stats = state.stats()
    assert stats["requests"] == stats["increments"] == 2400
    assert stats["gauges"] == {"lock_waiters": 0, "lock_holders": 0, "handlers_running": 0}
    with pytest.raises(KeyError):
        state.increment(9)


def test_global_lock_serialises_what_sharded_locks_overlap() -> None:
    """4 threads x 3 updates holding 20 ms each: 240 ms one at a time, 60 ms on 4 shards."""
    timings = {}
    waits = {}
    for mode in ("global", "sharded"):
        state = SharedState(SharedStateConfig(lock_mode=mode, shards=4, hold_ms=20, keys=4))
        timings[mode] = _hammer(state, [1, 2, 3, 4], per_thread=3)
        waits[mode] = state.stats()["lock_wait_us"]
        assert state.stats()["info"]["shards"] == ("1" if mode == "global" else "4")
    assert timings["global"] >= 0.23, timings
    assert timings["sharded"] < 0.6 * timings["global"], timings
    assert waits["global"] > 100_000 > waits["sharded"], waits  # ~360 ms of waiting vs ~0


async def test_http_endpoints(state_env) -> None:
    state_env(LOCK_MODE="sharded", SHARDS="4", HOLD_MS="0", KEYS="10")
    async with running(shared_state.app) as client:
        assert (await client.get("/health")).text == "ok"
        for expected in (1, 2):
            res = await client.post("/items/5/incr")
            assert res.json() == {"key": 5, "value": expected}
        assert (await client.get("/items/5")).json() == {"key": 5, "value": 2}
        for path in ("/items/11/incr", "/items/0/incr", "/items/abc/incr"):
            assert (await client.post(path)).status_code == 404, path
        assert (await client.get("/items/5/incr")).status_code == 405
        # Concurrent requests through the thread pool lose nothing either.
        results = await asyncio.gather(*(client.post(f"/items/{k % 10 + 1}/incr") for k in range(40)))
        assert all(r.status_code == 200 for r in results)
        stats = (await client.get("/stats")).json()
    assert stats["requests"] == 42 and stats["increments"] == 42
    assert stats["info"] == {"lock_mode": "sharded", "shards": "4", "hold_ms": "0",
                             "threadpool_tokens": "40"}


async def test_bad_setting_fails_startup(state_env) -> None:
    state_env(LOCK_MODE="nope")
    with pytest.raises(RuntimeError, match="LOCK_MODE"):
        async with running(shared_state.app):
            pass


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
