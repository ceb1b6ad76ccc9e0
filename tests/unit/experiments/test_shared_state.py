"""shared-state: the lock logic of the target and its HTTP surface, in process."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from targets import shared_state
from targets.shared_state import SharedState, SharedStateConfig
from tests.asgi import running

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
