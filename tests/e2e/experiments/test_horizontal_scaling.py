"""horizontal-scaling: the cpu target's counters across live worker processes, then the
experiment through the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
from pathlib import Path

import pytest

from targets import cpu
from tests.conftest import REPO, run_lab
from tests.figures import cpu_use, target_stat
from tests.unit.experiments.test_horizontal_scaling import _KNOBS, counter_dir, cpu_env, running  # noqa: F401 (fixtures)


async def test_health_waits_for_every_worker(cpu_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "server_layout", lambda: (os.getpid(), 2))
    sibling = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(30)")
    try:
        async with running(cpu.app) as client:
            res = await client.get("/health")
            assert res.status_code == 503 and "1 of 2" in res.text
            write_counters(counter_dir() / str(sibling.pid), 0, 0)
            assert (await client.get("/health")).status_code == 200
    finally:
        sibling.kill()
        await sibling.wait()


async def test_stats_sum_the_live_worker_processes(cpu_env) -> None:
    """Another live process's counter file is added in; a dead process's file is dropped."""
    cpu_env(CPU_ITERATIONS="100")
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    sibling = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(30)")
    try:
        async with running(cpu.app) as client:
            await client.get("/cpu")
            directory = counter_dir()
            # requests=10, handlers_running=1 in a live sibling; requests=99 in a dead one.
            write_counters(directory / str(sibling.pid), 10, 1)
            write_counters(directory / str(dead.pid), 99, 0)
            stats = (await client.get("/stats")).json()
            assert sorted(os.listdir(directory)) == sorted([str(os.getpid()), str(sibling.pid)])
    finally:
        sibling.kill()
        await sibling.wait()
    assert stats["requests"] == 11
    assert stats["gauges"] == {"handlers_running": 1, "workers": 2}
    assert stats["info"]["requests_by_worker"] == "10/1"


def write_counters(path: Path, *values: int) -> None:
    path.write_bytes(struct.pack(f"<{len(values)}q", *values))


# ------------------------------------------------------- the experiment, via the CLI


def test_horizontal_scaling_experiment(db_path: Path) -> None:
    # 2 s per variant measured, after 1 s of warm-up: without it one full suite run saw the
    # 2-worker variant at 213 vs 204 req/s (the second worker's first second). Measured
    # without warm-up (3 runs on 2 cores): cpu 187–199 → 347–371 req/s; io-async
    # 3,766–3,799 vs io-blocking 767–768 req/s.
    res = run_lab("run", "experiments/horizontal-scaling.toml", "--duration", "3s", "--warmup", "1s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert list(runs) == ["cpu-1-worker", "cpu-2-workers", "io-async", "io-blocking"]
    assert all(r["status"] == "completed" for r in runs.values()), runs
    one, two, io_async, io_blocking = (runs[name]["summary"] for name in runs)
    assert all(s["error_rate"] == 0 for s in (one, two, io_async, io_blocking))

    # CPU-bound: measured 1.65-1.9x with 2 workers on 2 cores (~180 vs ~340 req/s), the
    # generator sharing them. Two runs one after another compare the machine's other load
    # as much as the workers (a suite beside two busy loops saw 163 vs 143 req/s), so the
    # test asserts what the workers allow: one process with the GIL never uses more than
    # one core; two use more, unless the rest of the machine left them none idle.
    cpu_one = cpu_use(db_path, runs["cpu-1-worker"]["id"], 1.0)
    cpu_two = cpu_use(db_path, runs["cpu-2-workers"]["id"], 1.0)
    shown = [(round(c.target_cores, 2), round(c.idle_cores, 2)) for c in (cpu_one, cpu_two)]
    assert cpu_one.target_cores <= 1.15, shown
    assert cpu_two.target_cores >= 1.3 or cpu_two.idle_cores < 0.3, shown
    # Same work per request: within 30 % (measured within 2 %).
    assert two["target_cpu_s_per_1k"] < 1.3 * one["target_cpu_s_per_1k"]
    # The counters add up over both worker processes (each served some).
    assert target_stat(runs["cpu-2-workers"], "gauges", "workers", "max") == 2
    split = [int(n) for n in target_stat(runs["cpu-2-workers"], "info", "requests_by_worker").split("/")]
    assert min(split) >= 0.25 * sum(split), split  # measured ~51/49 %

    # I/O-bound, 200 VUs: measured ~3,800 vs ~780 req/s (4.9x); blocking is capped by
    # 40 thread-pool tokens / 50 ms = 800 req/s, so its p50 is ~256 ms for a 50 ms wait.
    # The async one needs little CPU (~0.07 ms a request), so a busy machine slows it
    # little: measured 0.27 cores at 3,750 req/s.
    assert io_async["throughput_rps"] >= 2 * io_blocking["throughput_rps"], (io_async, io_blocking)
    assert io_blocking["throughput_rps"] <= 850
    assert io_blocking["latency_ms"]["p50"] >= 150
    assert io_async["latency_ms"]["p50"] < 0.6 * io_blocking["latency_ms"]["p50"], (io_async, io_blocking)
    # The cap, seen from inside: never more than 40 blocking handlers at once (async: ~200).
    assert target_stat(runs["io-blocking"], "gauges", "handlers_running", "max") <= 40
    assert target_stat(runs["io-async"], "gauges", "handlers_running", "max") > 80
