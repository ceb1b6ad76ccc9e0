"""The replica target's sessions in a real redis-server: every replica knows every session."""

from __future__ import annotations

import pytest
import redis

from targets import replicas
from tests.asgi import running
from tests.e2e.experiments.test_caching_redis import redis_url  # noqa: F401 - a fixture

_ENV = ("SLOTS", "SERVICE_MS", "SLOW_REPLICAS", "LAB_REPLICA_INDEX", "REQUIRE_SESSION", "LAB_STATS_PORT")


async def test_a_session_in_redis_survives_a_move_to_another_replica(
        monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:  # noqa: F811 - the fixture
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SESSIONS", "redis")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AUTO_LOGIN", "1")
    async with running(replicas.app) as first, running(replicas.app) as second:
        second.cookies = first.cookies.jar  # one client: one jar for both replicas
        one = await first.get("/work")
        session = first.cookies["session"]
        assert one.status_code == 200 and one.json()["session"] == session
        moved = await second.get("/work")  # the replica that created it is not asked
        assert moved.status_code == 200 and moved.json()["session"] == session
        login = await second.post("/login", params={"user": "bob"})
        assert first.cookies["session"] == login.json()["session"] != session
        assert (await first.get("/work")).json()["session"] == login.json()["session"]
        firsts, seconds = [(await c.get("/stats")).json() for c in (first, second)]
    assert (firsts["logins"], firsts["served"], firsts["rejected_401"]) == (1, 2, 0)
    assert (seconds["logins"], seconds["served"], seconds["rejected_401"]) == (1, 1, 0)
    assert firsts["info"]["sessions"] == "redis"
    with redis.Redis.from_url(redis_url) as direct:
        assert len(direct.keys("replicas:session:*")) == 2
        assert direct.get(f"replicas:session:{login.json()['session']}") == b"bob"


async def test_an_unreachable_redis_fails_the_start(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from lab.topology.targets import free_port

    monkeypatch.setenv("SESSIONS", "redis")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    with pytest.raises(RuntimeError):
        async with running(replicas.app):
            pass
    assert "replicas: cannot reach redis at REDIS_URL=" in capsys.readouterr().err
