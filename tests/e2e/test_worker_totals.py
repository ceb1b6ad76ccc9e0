"""Totals the user sets are totals, in real runs: one connection asked is one connection used,
and workers from the command line are capped too.

The target is an external URL target served in this process, which counts the connections
it is sent requests on and how many it serves at once.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lab.engine import run_plan
from lab.events import Event, RunFinished, RunStarted
from lab.plan import plan_runs
from lab.progress import ProgressPrinter
from lab.report.table import comparison_table
from lab.store import Store, StoreRecorder
from tests.conftest import run_lab, write_experiment
from tests.e2e.servers import serve_asgi
from tests.unit.test_worker_totals import _experiment


class _CountingServer:
    """An ASGI app whose ``/work`` answers after 20 ms, counting the connections (client
    ports) it came on and the most requests served at once."""

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.served = 0
        self.url = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/work":
            self.ports.add(scope["client"][1])
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.02)
            finally:
                self.in_flight -= 1
            self.served += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def counting() -> AsyncIterator[_CountingServer]:
    srv = _CountingServer()
    async with serve_asgi(srv) as url:
        srv.url = url
        yield srv


async def test_one_connection_asked_is_one_connection_used(counting: _CountingServer,
                                                           tmp_path: Path) -> None:
    # 80 req/s of 20 ms requests: over two connections they would overlap (two requests
    # queued behind each other in the target, the service time doubled).
    plan = plan_runs(_experiment({"model": "open", "rate": 80, "duration": "1500ms",
                                  "connections": 1, "workers": 2}, counting.url))[0]
    events: list[Event] = []
    progress = io.StringIO()
    with Store(tmp_path / "r.db") as store:
        recorder = StoreRecorder(store)
        await run_plan(plan, [events.append, recorder, ProgressPrinter(progress)])
        run = store.get_run(recorder.last_run_id)
    finished = [e for e in events if isinstance(e, RunFinished)][0]
    assert finished.status == "completed", finished.reason
    assert counting.served > 20
    assert counting.most_in_flight == 1 and len(counting.ports) == 1, (counting.most_in_flight,
                                                                       counting.ports)
    started = [e for e in events if isinstance(e, RunStarted)][0]
    assert started.plan.load.workers == 1
    note = "connections = 1 is a total, not split over 2 workers"
    assert run.config["load"]["workers"] == 1
    assert run.config["generator_workers_asked"] == 2
    assert run.config["generator_workers_note"] == note
    assert f"1 generator worker ({note})" in progress.getvalue()
    console = Console(file=io.StringIO(), width=200)
    console.print(comparison_table([run]))
    caption = " ".join(console.file.getvalue().split())  # the caption wraps to the table
    assert f"load from: fast client, 1 generator worker ({note})" in caption


def test_workers_from_the_command_line_are_capped_too(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, """
        [experiment]
        title = "totals"
        [target]
        url = "http://127.0.0.1:9"
        ready_timeout = "1s"
        [load]
        model = "open"
        rate = 10
        connections = 2
        duration = "1s"
        [[load.requests]]
        path = "/"
    """)
    # Nothing listens on port 9: the run fails at once, but its plan is stored first.
    res = run_lab("run", str(exp), "--workers", "6", "--db", str(tmp_path / "r.db"),
                  "--format", "json")
    run = json.loads(res.stdout)["runs"][0]
    assert run["generator_workers"] == 2
    assert run["config"]["generator_workers_note"] == "connections = 2 is a total, not split over 6 workers"


async def test_max_rps_is_sent_in_full_when_there_are_fewer_vus_than_workers(
        counting: _CountingServer, tmp_path: Path) -> None:
    # 10 req/s for 3 s is 30 slots before the end (the next falls on the end). Split over 3
    # workers, the one without a VU would hold a third of the cap and never send it.
    plan = plan_runs(_experiment({"vus": 2, "max_rps": 10, "duration": "3s", "workers": 3},
                                 counting.url))[0]
    assert plan.load.workers == 2
    assert plan.generator_workers_note == "vus = 2 is a total, not split over 3 workers"
    events: list[Event] = []
    await run_plan(plan, [events.append])
    finished = [e for e in events if isinstance(e, RunFinished)][0]
    assert finished.status == "completed", finished.reason
    assert counting.served == 30
