"""The load-shedding target in process: queue everything vs answer 503 when the queue is full."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from targets import shedding
from tests.asgi import running


@pytest.fixture
def shedding_env(monkeypatch: pytest.MonkeyPatch):
    def make(**env: str) -> None:
        for name in ("SLOTS", "SERVICE_MS", "SERVICE_DIST", "MAX_QUEUE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return make


async def _gauges_when(client: Any, ready: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    """The target's gauges, polled until ``ready`` holds of them (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        gauges = (await client.get("/stats")).json()["gauges"]
        if ready(gauges):
            return gauges
        assert time.monotonic() < deadline, gauges
        await asyncio.sleep(0.005)


def test_config_from_env() -> None:
    config = shedding.SheddingConfig.from_env({})
    settings = (config.slots, config.service_ms, config.service_dist, config.max_queue)
    assert settings == (2, 20.0, "fixed", None)
    assert config.capacity_rps == 100 and config.policy == "unbounded"
    config = shedding.SheddingConfig.from_env({"SLOTS": "4", "SERVICE_MS": "10", "MAX_QUEUE": "0"})
    assert config.capacity_rps == 400 and config.max_queue == 0 and config.policy == "shed"
    for bad in ({"SLOTS": "0"}, {"SERVICE_MS": "x"}, {"MAX_QUEUE": "-1"}, {"MAX_QUEUE": "lots"},
                {"SERVICE_DIST": "normal"}):
        with pytest.raises(ValueError):
            shedding.SheddingConfig.from_env(bad)


async def test_bounded_queue_sheds_the_excess_at_once(shedding_env) -> None:
    shedding_env(SLOTS="1", SERVICE_MS="200", MAX_QUEUE="1")
    finished: list[str] = []
    async with running(shedding.app) as client:
        async def get(name: str) -> tuple[int, float]:
            start = time.perf_counter()
            resp = await client.get("/work")
            finished.append(name)
            return resp.status_code, time.perf_counter() - start

        first = asyncio.create_task(get("first"))
        await _gauges_when(client, lambda g: g["busy"] == 1)  # the first one holds the slot
        second = asyncio.create_task(get("second"))
        gauges = await _gauges_when(client, lambda g: g["queued"] == 1)  # the second one waits
        third = await get("third")  # the queue is full: shed at once
        # ... while the first one still holds the slot: it was never made to wait.
        first_was_running = not first.done()
        results = [await first, await second, third]
        stats = (await client.get("/stats")).json()
    assert gauges == {"in_flight": 2, "queued": 1, "busy": 1}
    assert [status for status, _ in results] == [200, 200, 503]
    assert first_was_running and finished == ["third", "first", "second"]
    assert results[1][1] >= 0.2  # its own 200 ms, after waiting for the first one's
    assert (stats["requests"], stats["served"], stats["shed"]) == (3, 2, 1)
    assert stats["gauges"] == {"in_flight": 0, "queued": 0, "busy": 0}
    assert stats["info"]["policy"] == "shed" and stats["info"]["capacity_rps"] == "5"


async def test_unbounded_queue_serves_everyone_in_turn(shedding_env) -> None:
    shedding_env(SLOTS="2", SERVICE_MS="20")
    async with running(shedding.app) as client:
        start = time.perf_counter()
        responses = await asyncio.gather(*(client.get("/work") for _ in range(10)))
        elapsed = time.perf_counter() - start
        stats = (await client.get("/stats")).json()
    assert [r.status_code for r in responses] == [200] * 10
    assert elapsed >= 5 * 0.02  # 10 requests, 2 at a time, 20 ms each
    assert (stats["requests"], stats["served"], stats["shed"]) == (10, 10, 0)
    assert stats["info"]["policy"] == "unbounded"


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    resource = shedding.Resource(shedding.SheddingConfig(slots=1, max_queue=None))
    assert resource.try_enter() is True
    waiter = resource.try_enter()
    assert isinstance(waiter, asyncio.Future)
    waiter.cancel()
    resource.abandon(waiter)
    resource.leave()
    assert resource.busy == 0 and not resource.waiters
    # Handed the slot and cancelled at the same moment: the slot passes on, not lost.
    assert resource.try_enter() is True
    waiter = resource.try_enter()
    assert isinstance(waiter, asyncio.Future)
    resource.leave()  # hands the slot to the waiter
    resource.abandon(waiter)
    assert resource.busy == 0


def test_exponential_service_times_are_seeded_with_the_right_mean() -> None:
    config = shedding.SheddingConfig(service_ms=20.0, service_dist="exponential")
    draws = [shedding.Resource(config).service_time_s() for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same sequence
    resource = shedding.Resource(config)
    times = [resource.service_time_s() for _ in range(20000)]
    assert sum(times) / len(times) == pytest.approx(0.020, rel=0.05)
    assert shedding.Resource(shedding.SheddingConfig()).service_time_s() == 0.020
