"""The async-queue target in process: inline work, work enqueued to huey on SQLite, its lag."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from targets import jobs
from tests.asgi import running
from tests.e2e.experiments.test_caching_redis import HAVE_REDIS, redis_url  # noqa: F401 (fixture)


@pytest.fixture
def jobs_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("REDIS_URL", "JOB_QUEUE", "JOB_WORKERS", "MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORK_MS", "5")
    return monkeypatch


def exists(*parts: str) -> bool:
    return Path(*parts).exists()


def consumer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("Worker-", "Scheduler"))]


async def wait_done(client: httpx.AsyncClient, n: int, within_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        stats = (await client.get("/stats")).json()
        if stats["jobs_done"] >= n:
            return stats
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.02)


async def _threads_gone() -> bool:
    deadline = time.monotonic() + 5
    while consumer_threads():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def test_config_is_validated(jobs_env: pytest.MonkeyPatch) -> None:
    assert jobs.JobsConfig.from_env().mode == "inline"
    for name, value, message in [("MODE", "later", "MODE"), ("JOB_QUEUE", "kafka", "JOB_QUEUE"),
                                 ("WORK_MS", "lots", "WORK_MS"), ("JOB_WORKERS", "0", "JOB_WORKERS")]:
        jobs_env.setenv(name, value)
        with pytest.raises(ValueError, match=message):
            jobs.JobsConfig.from_env()
        jobs_env.delenv(name)
    jobs_env.setenv("JOB_QUEUE", "redis")
    with pytest.raises(ValueError, match="REDIS_URL"):
        jobs.JobsConfig.from_env()


def test_work_is_calibrated_and_deterministic() -> None:
    iterations = jobs.calibrate(20)
    assert iterations > 1
    # CPU time of this thread, which other programs on the machine do not stretch as they
    # stretch the wall clock: ~20 ms. (Calibrating on a busy machine can only take the
    # work for slower than it is, so never more.)
    start = time.thread_time()
    first = jobs.build_report("42", iterations)
    took_ms = (time.thread_time() - start) * 1000
    assert 5 < took_ms < 100, took_ms
    assert jobs.build_report("42", iterations) == first != jobs.build_report("43", iterations)


def test_lag_is_the_mean_of_the_last_second(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_800_000_000.0
    monkeypatch.setattr(jobs, "time", type("Clock", (), {"time": staticmethod(lambda: now)}))
    stats = jobs.JobStats()
    assert stats.recent_lag_ms() == 0.0
    stats.jobs_running = 2
    stats.job_finished(now - 0.100)
    stats.job_finished(now - 0.300)
    assert stats.recent_lag_ms() == pytest.approx(200.0)
    assert (stats.jobs_done, stats.jobs_running) == (2, 0)
    now += 1.5  # nothing finished in the last second: the last lag stands
    assert stats.recent_lag_ms() == pytest.approx(300.0)


async def test_inline_builds_the_report_in_the_request(jobs_env: pytest.MonkeyPatch) -> None:
    jobs_env.setenv("MODE", "inline")
    async with running(jobs.app) as client:
        response = await client.post("/reports/17")
        assert (await client.get("/reports/17")).status_code == 405
        stats = (await client.get("/stats")).json()
    assert response.status_code == 200
    assert response.json()["status"] == "done" and len(response.json()["report"]) == 64
    assert consumer_threads() == []
    assert (stats["requests"], stats["jobs_enqueued"], stats["jobs_done"]) == (1, 0, 1)
    assert stats["gauges"]["queue_depth"] == 0 and stats["gauges"]["job_lag_ms"] > 0
    assert stats["info"]["queue"] == "none"


async def test_queued_on_sqlite_defers_the_work_and_cleans_up(jobs_env: pytest.MonkeyPatch) -> None:
    jobs_env.setenv("MODE", "queued")
    made: list[str] = []
    real_mkdtemp = jobs.tempfile.mkdtemp

    def mkdtemp(**kwargs: Any) -> str:
        made.append(real_mkdtemp(**kwargs))
        return made[-1]

    jobs_env.setattr(jobs.tempfile, "mkdtemp", mkdtemp)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    async with running(jobs.app) as client:
        assert len(made) == 1 and exists(made[0], "queue.db")
        # The consumer runs inside the server but leaves its signal handlers to uvicorn.
        assert {s: signal.getsignal(s) for s in handlers} == handlers
        assert len(consumer_threads()) == 3  # two workers and huey's scheduler
        responses = [await client.post(f"/reports/{i}") for i in range(10)]
        stats = await wait_done(client, 10)
    assert [r.status_code for r in responses] == [202] * 10
    assert len({r.json()["job"] for r in responses}) == 10
    assert (stats["requests"], stats["jobs_enqueued"], stats["jobs_done"]) == (10, 10, 10)
    assert stats["gauges"]["queue_depth"] == 0 and stats["gauges"]["jobs_running"] == 0
    assert stats["gauges"]["job_lag_ms"] > 0
    assert stats["info"]["queue"] == "huey-sqlite"
    assert await _threads_gone(), consumer_threads()  # stopped gracefully at shutdown
    assert len(made) == 1 and not exists(made[0])  # the queue's directory is gone
