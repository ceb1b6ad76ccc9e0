"""Per-VU state in real runs: each VU keeps its own cookies (both client engines) and
sends its own run-wide number where a request says ``{vu}``."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from lab.engine import run_plan
from lab.events import Event, RunFinished
from tests.conftest import plan_against_testing
from tests.e2e.servers import serve_asgi

VUS = 6


def _finished(events: list[Event]) -> RunFinished:
    finished = [e for e in events if isinstance(e, RunFinished)][0]
    assert finished.status == "completed", finished.reason
    return finished


@pytest.mark.parametrize("client", ["fast", "httpx"])
async def test_each_vu_logs_in_once_and_keeps_its_session(client: str) -> None:
    # The replica logs a request without a session cookie in (a new session, counted) and
    # answers 401 to a cookie it does not know: with a jar per VU, exactly one login per
    # VU and no 401; a jar shared by the VUs, or none, would log in more often.
    plan = plan_against_testing(
        {"vus": VUS, "workers": 2, "duration": "2s", "client": client,
         "requests": [{"path": "/work", "headers": {"X-User": "user-{vu}"}}]},
        {"app": "targets.replicas:app", "env": {"AUTO_LOGIN": "1", "SLOTS": "8", "SERVICE_MS": "5"}})
    events: list[Event] = []
    await run_plan(plan, [events.append])
    stats = _finished(events).target_stats
    assert stats["requests"] > 3 * VUS, stats  # several requests per VU, one login each
    assert (stats["logins"], stats["rejected_401"], stats["users"]) == (VUS, 0, VUS), stats
    assert stats["served"] == stats["requests"], stats


@pytest.mark.parametrize("client", ["fast", "httpx"])
async def test_open_model_arrivals_carry_no_cookies(client: str) -> None:
    plan = plan_against_testing(
        {"model": "open", "rate": 40, "duration": "2s", "client": client, "requests": [{"path": "/work"}]},
        {"app": "targets.replicas:app", "env": {"AUTO_LOGIN": "1"}})
    events: list[Event] = []
    await run_plan(plan, [events.append])
    stats = _finished(events).target_stats
    # Every arrival is a new visitor: it logs in, and none is refused.
    assert stats["requests"] >= 40 and stats["logins"] == stats["requests"], stats
    assert stats["rejected_401"] == 0, stats


class _Recorder:
    """An ASGI app that answers 200 and records each request's path, X-User and body."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, bytes]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        self.seen.add((scope["path"], headers.get(b"x-user", b"").decode(), body))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("client", ["fast", "httpx"])
async def test_vu_numbers_are_one_to_n_across_two_workers(client: str) -> None:
    from lab.plan import plan_runs
    from lab.spec import Experiment

    recorder = _Recorder()
    async with serve_asgi(recorder) as url:
        exp = Experiment.model_validate({
            "experiment": {"title": "t"},
            "target": {"url": url, "ready_path": "/", "stats_path": ""},
            "load": {"vus": 5, "workers": 2, "duration": "1s", "timeout": "2s", "client": client,
                     "requests": [{"method": "POST", "path": "/users/{vu}",
                                   "headers": {"X-User": "user-{vu}"}, "body": "vu={vu}"}]},
        })
        exp.name = "vu"
        events: list[Any] = []
        await run_plan(plan_runs(exp)[0], [events.append])
    _finished(events)
    seen = {entry for entry in recorder.seen if entry[0] != "/"}  # not the readiness check
    assert seen == {(f"/users/{n}", f"user-{n}", f"vu={n}".encode()) for n in range(1, 6)}
