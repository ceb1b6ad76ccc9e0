"""Cluster runs in the TUI: the Live screen's header says where the load comes from (the
cluster as named, its scheduler, how many generator workers on how many hosts), warns of a
generator whose clock is off, and `s` ends a real ``local:2`` run with nothing left running
(the autouse ``no_orphans`` fixture looks for ``distributed.cli`` processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

from lab.events import Event, GeneratorInfo, GeneratorsReady
from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.live import LiveScreen
from lab.tui.widgets.chart import TimeChart
from tests.tui.conftest import FakeEngine
from tests.tui.test_screens import SIZE, _text
from tests.tui.waits import settle, wait_until

CLUSTERED = """\
[experiment]
title = "Quick check on a Dask cluster"
question = "Does the fast endpoint answer when the load comes from Dask workers?"

[target]
app = "targets.testing:app"
ready_path = "/health"

[load]
model = "closed"
vus = 2
# Long enough never to end before the test stops it; the test lasts until its first interval.
duration = "60s"
think_time = "10ms"
timeout = "2s"
cluster = "local:2"

[[load.requests]]
path = "/fast"
"""


def _shown(widget: Widget) -> str:
    """What the widget shows on screen, its lines joined by spaces (empty when hidden)."""
    if not widget.display or not widget.size.area:
        return ""
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return " ".join(" ".join(line.text.split()) for line in lines).strip()


async def _drawn(pilot: Pilot[None], live: LiveScreen) -> None:
    await wait_until(pilot, lambda: live._drawn_version == live.snapshot.version, "a redraw")
    await pilot.pause()


async def _live_drawn(pilot: Pilot[None], app: LabApp) -> LiveScreen:
    """The Live screen once it has drawn the run's first intervals."""
    await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen) and bool(app.screen.snapshot.t),
                     "the first intervals")
    live = app.screen
    assert isinstance(live, LiveScreen)
    await _drawn(pilot, live)
    return live


def _clustered_app(tmp_path: Path) -> LabApp:
    pytest.importorskip("distributed")
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "clustered.toml").write_text(CLUSTERED)
    return LabApp(tmp_path / "results.db", folder)


async def _running(pilot: Pilot[None], app: LabApp) -> LiveScreen:
    """Start the experiment; the Live screen once its first requests are drawn."""
    await settle(pilot, app)
    await pilot.press("r")
    await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen")
    live = app.screen
    assert isinstance(live, LiveScreen)
    await wait_until(pilot, lambda: live.snapshot.ok > 0, "the first requests", within_s=40)
    await _drawn(pilot, live)
    return live


async def test_cluster_run_names_cluster_scheduler_and_workers_in_the_header_and_s_stops_it(
        tmp_path: Path) -> None:
    app = _clustered_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        live = await _running(pilot, app)
        line = live.query_one("#load-source")

        scheduler = live.snapshot.scheduler
        assert scheduler is not None and scheduler.startswith("tcp://127.0.0.1:")
        header = _shown(line)
        assert header == (f"load from: 2 generator workers on 1 host (dask) · cluster local:2 · "
                          f"scheduler {scheduler}")
        # In the header, above the charts.
        assert line.region.bottom <= live.query_one("#chart-throughput", TimeChart).region.y

        await pilot.press("s")
        await wait_until(pilot, lambda: not live.running, "the run to end", within_s=30)
        await pilot.pause()
        assert live.snapshot.status == "aborted"
        assert "aborted" in _text(app, "#outcomes")
        assert _shown(line) == header  # the ended run still says where its load came from

    with Store(app.db_path, readonly=True) as store:
        (run,) = store.list_runs()
        intervals = store.intervals(run.id)
    assert (run.status, run.reason) == ("aborted", "stopped by user")
    assert intervals and run.summary is not None and run.summary.ok > 0
    generators = run.config["generators"]
    assert (generators["cluster"], generators["scheduler"], generators["workers"]) == (
        "local:2", scheduler, 2)


async def test_quitting_mid_cluster_run_stores_it_and_ends_the_local_cluster(tmp_path: Path) -> None:
    app = _clustered_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        live = await _running(pilot, app)
        assert live.snapshot.generators
        await pilot.press("q")
        await wait_until(pilot, lambda: not live.running, "the run to end", within_s=30)
    with Store(app.db_path, readonly=True) as store:
        (run,) = store.list_runs()
        intervals = store.intervals(run.id)
    # The autouse no_orphans fixture fails this test if a Dask scheduler or worker is left.
    assert (run.status, run.reason) == ("aborted", "stopped: the lab was closed")
    assert intervals


def _ready_with_a_clock_off(key: str, seconds: int) -> list[Event]:
    return [GeneratorsReady(key, "dask", "local:3", "tcp://127.0.0.1:40001", (
        GeneratorInfo(0, "lab-a", 101, "tcp://127.0.0.1:40002", 2.0),
        GeneratorInfo(1, "lab-a", 102, "tcp://127.0.0.1:40003", 73.0),
        GeneratorInfo(2, "lab-a", 103, "tcp://127.0.0.1:40004", -4.0)))]


async def test_lab_cluster_names_the_cluster_until_its_workers_are_ready_then_an_off_clock_warns(
        experiments_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setenv("LAB_CLUSTER", "local:3")
    gate = asyncio.Event()
    # The fake engine sends half the intervals, waits for the gate, then the rest and the
    # generators' facts (in that order, so the screen shows the waiting state first).
    engine = FakeEngine(seconds=4, gate=gate, extra=_ready_with_a_clock_off)
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine, autorun="quick")
    async with app.run_test(size=SIZE) as pilot:
        live = await _live_drawn(pilot, app)
        line, clocks = live.query_one("#load-source"), live.query_one("#clock-warning")
        assert _shown(line) == "load from: Dask cluster local:3 · waiting for its generator workers…"
        assert _shown(clocks) == ""

        gate.set()
        await wait_until(pilot, lambda: bool(live.snapshot.generators), "the generators' facts")
        await _drawn(pilot, live)
        assert _shown(line) == ("load from: 3 generator workers on 1 host (dask) · cluster local:3 · "
                                "scheduler tcp://127.0.0.1:40001")
        assert _shown(clocks) == ("⚠ lab-a, worker 1: its clock is +73 ms off the Dask scheduler's "
                                  "(over 50 ms): its intervals are shifted by as much; sync the clocks "
                                  "(chrony, ntpd)")
        await pilot.press("s")
        await wait_until(pilot, lambda: not live.running, "the run to end")


async def test_a_local_run_has_no_load_source_line(experiments_dir: Path, tmp_path: Path) -> None:
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=FakeEngine(seconds=3), autorun="quick")
    async with app.run_test(size=SIZE) as pilot:
        live = await _live_drawn(pilot, app)
        assert _shown(live.query_one("#load-source")) == ""
        assert _shown(live.query_one("#clock-warning")) == ""
        await pilot.press("s")
        await wait_until(pilot, lambda: not live.running, "the run to end")
