"""The replica target in process: slots and a FIFO queue, the busy fraction it reports, the
slow replicas, and sessions (login, cookie, 401 for a session the replica does not know)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from targets import replicas
from tests.asgi import running

_ENV = ("SLOTS", "SERVICE_MS", "SLOW_REPLICAS", "SLOW_FACTOR", "LAB_REPLICA_INDEX", "CPU_MS",
        "SESSIONS", "REDIS_URL", "REQUIRE_SESSION", "AUTO_LOGIN", "LAB_STATS_PORT")


@pytest.fixture
def replica_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def make(**env: str) -> None:
        for name in _ENV:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return make


async def _stats_when(client: httpx.AsyncClient, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The replica's stats, polled until ``ready`` holds of them (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        stats = (await client.get("/stats")).json()
        if ready(stats):
            return stats
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.005)


def test_config_from_env_and_capacity() -> None:
    config = replicas.ReplicaConfig.from_env({})
    assert (config.index, config.slots, config.service_ms, config.sessions) == (0, 4, 10.0, "memory")
    assert config.capacity_rps == 400 and not config.require_session
    slow = replicas.ReplicaConfig.from_env({"LAB_REPLICA_INDEX": "2", "SLOW_REPLICAS": "0, 2",
                                            "SLOW_FACTOR": "5", "SLOTS": "2", "SERVICE_MS": "20"})
    assert slow.slow and slow.service_ms == 100.0 and slow.capacity_rps == 20.0
    fast = replicas.ReplicaConfig.from_env({"LAB_REPLICA_INDEX": "1", "SLOW_REPLICAS": "0,2"})
    assert not fast.slow and fast.service_ms == 10.0
    assert replicas.ReplicaConfig.from_env({"AUTO_LOGIN": "1"}).require_session


@pytest.mark.parametrize("bad", [
    {"SLOTS": "0"}, {"SLOTS": "2.5"}, {"SERVICE_MS": "0"}, {"SERVICE_MS": "nan"},
    {"SLOW_FACTOR": "-1"}, {"SLOW_REPLICAS": "first"}, {"LAB_REPLICA_INDEX": "-1"},
    {"SESSIONS": "disk"}, {"SESSIONS": "redis"}, {"REQUIRE_SESSION": "maybe"}, {"CPU_MS": "-2"},
])
def test_bad_settings_name_the_variable(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError) as err:
        replicas.ReplicaConfig.from_env(bad)
    assert next(iter(bad)) in str(err.value)


async def test_bad_settings_fail_the_start(replica_env, capsys: pytest.CaptureFixture[str]) -> None:
    replica_env(SLOTS="none")
    with pytest.raises(RuntimeError):
        async with running(replicas.app):
            pass
    assert "replicas: invalid configuration: SLOTS must be an integer" in capsys.readouterr().err


async def test_one_more_request_than_slots_waits_in_line(replica_env) -> None:
    replica_env(SLOTS="2", SERVICE_MS="400")
    async with running(replicas.app) as client:
        finished: list[int] = []

        async def get(i: int) -> dict[str, Any]:
            body = (await client.get("/work")).json()
            finished.append(i)
            return body

        first = [asyncio.create_task(get(i)) for i in range(2)]
        await _stats_when(client, lambda s: s["gauges"]["busy"] == 2)
        third = asyncio.create_task(get(2))
        stats = await _stats_when(client, lambda s: s["gauges"]["in_flight"] == 3)
        assert (stats["gauges"]["busy"], stats["gauges"]["queued"]) == (2, 1)
        bodies = await asyncio.gather(*first, third)
        stats = (await client.get("/stats")).json()
    assert finished[-1] == 2  # served after a slot came free, never beside the first two
    assert {b["replica"] for b in bodies} == {0} and all(b["pid"] > 0 for b in bodies)
    assert (stats["requests"], stats["served"], stats["rejected_401"]) == (3, 3, 0)
    assert stats["gauges"] | {"utilization": 0} == {"in_flight": 0, "queued": 0, "busy": 0,
                                                    "utilization": 0}
    assert stats["busy_ms"] >= 3 * 400 * 0.99  # three service times of 400 ms
    assert stats["info"] == {"replica": "0", "pid": str(bodies[0]["pid"]), "slots": "2",
                             "service_ms": "400", "capacity_rps": "5", "sessions": "memory"}


async def test_utilization_is_near_one_when_saturated_and_zero_when_idle(replica_env) -> None:
    replica_env(SLOTS="2", SERVICE_MS="20")
    async with running(replicas.app) as client:
        idle = (await client.get("/stats")).json()
        assert idle["gauges"]["utilization"] == 0.0
        # Three clients looping on two slots: a request always waits, so no slot is idle.
        stop = time.monotonic() + 1.3

        async def loop() -> None:
            while time.monotonic() < stop:
                await client.get("/work")

        await asyncio.gather(*(loop() for _ in range(3)))
        saturated = (await client.get("/stats")).json()
    assert saturated["gauges"]["utilization"] >= 0.9, saturated


def test_busy_meter_integrates_the_busy_slots_exactly() -> None:
    now = [100.0]
    meter = replicas.BusyMeter(slots=2, window_s=1.0, clock=lambda: now[0])
    assert meter.read() == (0.0, 0.0)
    now[0] = 100.5
    meter.enter()  # one slot busy from 0.5 s
    now[0] = 101.0
    assert meter.read() == pytest.approx((0.5, 0.5 / (2 * 1.0)))
    meter.enter()  # both busy from 1.0 s
    now[0] = 102.0
    assert meter.read() == pytest.approx((2.5, 1.0))  # the last second: both slots busy
    meter.leave()
    meter.leave()  # idle from 2.0 s
    now[0] = 102.25
    # Window [1.25, 2.25]: both slots busy for 0.75 s, then idle.
    assert meter.read() == pytest.approx((2.5, 0.75 * 2 / 2.0))
    now[0] = 104.0
    assert meter.read() == pytest.approx((2.5, 0.0))  # idle for longer than the window


async def test_a_slow_replica_serves_slow_factor_times_slower(replica_env) -> None:
    served_ms = {}
    for index in ("0", "1"):
        replica_env(SLOTS="1", SERVICE_MS="20", SLOW_REPLICAS="1", SLOW_FACTOR="5",
                    LAB_REPLICA_INDEX=index)
        async with running(replicas.app) as client:
            body = (await client.get("/work")).json()
            stats = (await client.get("/stats")).json()
        assert body["replica"] == int(index)
        served_ms[index] = (stats["busy_ms"], stats["info"]["service_ms"], stats["info"]["capacity_rps"])
    assert served_ms["0"][1:] == ("20", "50") and served_ms["1"][1:] == ("100", "10")
    assert served_ms["0"][0] >= 20 * 0.99 and served_ms["1"][0] >= 100 * 0.99


async def test_login_sets_a_cookie_that_work_requires(replica_env) -> None:
    replica_env(REQUIRE_SESSION="1")
    async with running(replicas.app) as client:
        anonymous = await client.get("/work")
        assert (anonymous.status_code, anonymous.text) == (401, "unknown session")
        assert "set-cookie" not in anonymous.headers  # nothing to delete
        login = await client.post("/login", params={"user": "ann"})
        assert login.status_code == 200
        session = login.json()["session"]
        assert login.json()["user"] == "ann"
        assert client.cookies["session"] == session
        assert "path=/" in login.headers["set-cookie"].lower()
        served = await client.get("/work")
        assert served.status_code == 200 and served.json()["session"] == session
        api = await client.get("/api/orders/7")
        assert api.status_code == 200 and api.json()["session"] == session
        forged = await client.get("/work", headers={"Cookie": "session=forged"})
        assert (forged.status_code, forged.text) == (401, "unknown session")
        assert "max-age=0" in forged.headers["set-cookie"].lower()
        stats = (await client.get("/stats")).json()
    assert (stats["logins"], stats["served"], stats["rejected_401"], stats["requests"]) == (1, 2, 2, 5)


async def test_auto_login_costs_one_401_per_lost_session(replica_env) -> None:
    replica_env(AUTO_LOGIN="1")
    # Two replicas with sessions in memory behind one host name, and one client whose
    # cookie jar (a browser's) both share.
    async with running(replicas.app) as first, running(replicas.app) as second:
        second.cookies = first.cookies.jar  # one jar (a Cookies would be copied)
        jar = first.cookies
        one = await first.get("/work")
        session = jar["session"]
        assert one.status_code == 200 and one.json()["session"] == session
        again = await first.get("/work")
        assert again.status_code == 200 and again.json()["session"] == session
        # The balancer sends the user to the other replica, which never saw the session.
        lost = await second.get("/work")
        assert (lost.status_code, lost.text) == (401, "unknown session")
        assert "session" not in jar  # deleted: the next request logs in again
        relogin = await second.get("/work")
        assert relogin.status_code == 200 and jar["session"] not in (None, session)
        assert relogin.json()["session"] == jar["session"]
        firsts, seconds = [(await c.get("/stats")).json() for c in (first, second)]
    assert (firsts["logins"], firsts["served"], firsts["rejected_401"]) == (1, 2, 0)
    assert (seconds["logins"], seconds["served"], seconds["rejected_401"]) == (1, 1, 1)


async def test_distinct_users_are_counted(replica_env) -> None:
    replica_env()
    async with running(replicas.app) as client:
        for user in ("user-1", "user-2", "user-1", None):
            headers = {"X-User": user} if user else {}
            assert (await client.get("/work", headers=headers)).status_code == 200
        stats = (await client.get("/stats")).json()
    assert (stats["users"], stats["requests"]) == (2, 4)
