"""The fan-out target in process: three downstream calls in a row vs at once (asyncio.gather)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from targets import fanout
from tests.asgi import running


def downstream_asgi(latency_s: float) -> Any:
    """The downstream app with its lifespan state set by hand (no lifespan needed)."""
    state = {"downstream": fanout.DownstreamState(latency_s=latency_s)}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await fanout.downstream({**scope, "state": dict(state)}, receive, send)

    return app


async def timed_page(client: httpx.AsyncClient) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    resp = await client.get("/page")
    assert resp.status_code == 200, resp.text
    return time.perf_counter() - start, resp.json()


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
async def test_page_calls_all_three_services(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT", mode)
    monkeypatch.delenv("DOWNSTREAM_URL", raising=False)
    app = fanout.make_app(transport=httpx.ASGITransport(app=downstream_asgi(0.0)))
    async with running(app) as client:
        _, body = await timed_page(client)
        assert body["mode"] == mode
        assert [part["service"] for part in body["parts"]] == list(fanout.SERVICES)
        await timed_page(client)
        stats = (await client.get("/stats")).json()
    assert stats["requests"] == 2
    assert stats["downstream_calls"] == 6
    assert stats["downstream_errors"] == 0
    assert stats["gauges"] == {"in_flight": 0, "downstream_in_flight": 0}
    assert stats["info"] == {"fanout": mode}


async def test_concurrent_waits_for_the_slowest_call_only(monkeypatch: pytest.MonkeyPatch) -> None:
    latency = 0.05
    took = {}
    for mode in ("sequential", "concurrent"):
        monkeypatch.setenv("FANOUT", mode)
        app = fanout.make_app(transport=httpx.ASGITransport(app=downstream_asgi(latency)))
        async with running(app) as client:
            took[mode] = min([(await timed_page(client))[0] for _ in range(3)])
    assert took["sequential"] >= 3 * latency
    assert took["concurrent"] >= latency
    # One wait instead of three, against the sequential page as the control: a busy
    # machine adds the same overheads to both (measured 0.05 against 0.15 s).
    assert took["concurrent"] < 0.6 * took["sequential"], took


async def test_a_failing_downstream_makes_a_502(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"down"})

    monkeypatch.setenv("FANOUT", "concurrent")
    async with running(fanout.make_app(transport=httpx.ASGITransport(app=broken))) as client:
        resp = await client.get("/page")
        stats = (await client.get("/stats")).json()
    assert resp.status_code == 502
    assert stats["downstream_errors"] == 3
    assert stats["gauges"]["in_flight"] == 0


async def test_bad_settings_fail_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT", "parallel")
    with pytest.raises(RuntimeError, match="FANOUT"):
        async with running(fanout.make_app(transport=httpx.MockTransport(lambda r: None))):
            pass
    monkeypatch.setenv("FANOUT", "sequential")
    monkeypatch.delenv("DOWNSTREAM_URL", raising=False)
    with pytest.raises(RuntimeError, match="DOWNSTREAM_URL"):
        async with running(fanout.make_app()):
            pass


async def test_downstream_answers_after_its_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNSTREAM_LATENCY_MS", "40")
    async with running(fanout.downstream) as client:
        start = time.perf_counter()
        in_turn = [await client.get(f"/svc/{n}") for n in fanout.SERVICES]
        one_by_one = time.perf_counter() - start
        start = time.perf_counter()
        results = await asyncio.gather(*(client.get(f"/svc/{n}") for n in fanout.SERVICES))
        elapsed = time.perf_counter() - start
        stats = (await client.get("/stats")).json()
    assert [r.json()["service"] for r in results] == [r.json()["service"] for r in in_turn] \
        == list(fanout.SERVICES)
    assert one_by_one >= 3 * 0.04 and elapsed >= 0.04
    # The three waits overlap, the downstream is async too: one wait, not three (measured
    # 0.04 against 0.12 s; the calls one by one are the control a busy machine slows alike).
    assert elapsed < 0.6 * one_by_one, (elapsed, one_by_one)
    assert stats["requests"] == 6
    assert stats["info"] == {"latency_ms": "40"}
