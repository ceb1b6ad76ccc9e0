"""horizontal-scaling: the cpu target's settings, endpoints and counters, in process."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from targets import cpu, workers
from tests.asgi import running

_KNOBS = ("CPU_ITERATIONS", "IO_MS", "THREADPOOL_TOKENS")


def counter_dir() -> Path:
    """The counter directory of the app running in this (test) process."""
    return Path(tempfile.gettempdir()) / f"lab-cpu-{os.getpid()}"


@pytest.fixture
def cpu_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Counter files go to tmp_path; returns a setter for the target's env knobs."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name in _KNOBS:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env

# ------------------------------------------------------------------ unit: the target


def test_config_defaults_and_errors(cpu_env) -> None:
    assert cpu.CpuConfig.from_env() == cpu.CpuConfig(40_000, 50.0, 40)
    cpu_env(CPU_ITERATIONS="1000", IO_MS="5", THREADPOOL_TOKENS="3")
    assert cpu.CpuConfig.from_env() == cpu.CpuConfig(1000, 5.0, 3)
    for name, bad in (("IO_MS", "fast"), ("THREADPOOL_TOKENS", "0"), ("CPU_ITERATIONS", "-1")):
        cpu_env(**{name: bad})
        with pytest.raises(ValueError, match=name):
            cpu.CpuConfig.from_env()
        cpu_env(**{name: "7"})


def test_burn_is_deterministic_cpu_work() -> None:
    assert cpu.burn(1000) == cpu.burn(1000)
    assert cpu.burn(1000) != cpu.burn(1001)
    started = time.process_time()
    cpu.burn(40_000)
    assert time.process_time() - started > 0.0005  # real work, not a no-op (~5 ms here)


async def test_endpoints_answer_and_only_loaded_ones_count(cpu_env) -> None:
    cpu_env(CPU_ITERATIONS="1000", IO_MS="1")
    async with running(cpu.app) as client:
        assert (await client.get("/health")).text == "ok"
        for path in ("/cpu", "/io/async", "/io/blocking"):
            res = await client.get(path)
            assert res.status_code == 200, path
        stats = (await client.get("/stats")).json()
        assert stats["requests"] == 3  # /health and /stats are not counted
        assert stats["gauges"] == {"handlers_running": 0, "workers": 1}
        assert stats["info"]["requests_by_worker"] == "3"
        assert stats["info"]["threadpool_tokens"] == "40"
        directory = counter_dir()
        assert sorted(os.listdir(directory)) == [str(os.getpid())]
    assert directory.name not in os.listdir(directory.parent)  # removed at shutdown


async def test_blocking_handlers_are_capped_by_the_thread_pool(cpu_env) -> None:
    """6 concurrent 100 ms waits: async overlaps all 6; blocking runs 2 at a time (3 waves)."""
    cpu_env(IO_MS="100", THREADPOOL_TOKENS="2")
    took = {}
    async with running(cpu.app) as client:
        for path, running_at_once in (("/io/async", 6), ("/io/blocking", 2)):
            started = time.monotonic()
            calls = [asyncio.create_task(client.get(path)) for _ in range(6)]
            # The target's own gauge, read until every call has answered: the most
            # handlers it ever ran at once.
            most = 0
            while not all(call.done() for call in calls):
                gauges = (await client.get("/stats")).json()["gauges"]
                most = max(most, gauges["handlers_running"])
                await asyncio.sleep(0.005)  # the in-process transport never waits itself
            results = await asyncio.gather(*calls)
            took[path] = time.monotonic() - started
            assert all(r.status_code == 200 for r in results)
            assert most == running_at_once, (path, most)
    # Three waves of 100 ms at the least; the overlapped waits take one wave, however
    # slow the machine (measured 0.10 against 0.30 s).
    assert took["/io/blocking"] >= 0.29, took
    assert took["/io/async"] < 0.6 * took["/io/blocking"], took


def test_server_layout_from_uvicorn_command_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    python = sys.executable
    assert workers._uvicorn_workers([python, "-m", "uvicorn", "targets.cpu:app", "--workers", "3"]) == 3
    assert workers._uvicorn_workers(["/venv/bin/uvicorn", "targets.cpu:app", "--workers=2"]) == 2
    assert workers._uvicorn_workers([python, "-m", "uvicorn", "targets.cpu:app"]) == 1
    # The lab's own --workers (generator processes) is not uvicorn's.
    assert workers._uvicorn_workers([python, "-m", "lab", "run", "x", "--workers", "2"]) is None
    assert workers.server_layout() == (os.getpid(), 1)  # pytest: one process
    spawned = [python, "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"]
    supervisor = [python, "-m", "uvicorn", "targets.cpu:app", "--workers", "2"]
    lines = {os.getpid(): spawned, os.getppid(): supervisor}
    monkeypatch.setattr(workers, "_cmdline", lambda pid: lines[pid])
    assert workers.server_layout() == (os.getppid(), 2)  # a worker of a 2-worker server
