"""A real, short run from the TUI: target and generator processes, charts that move,
a live load change, and a stop that leaves the run stored as aborted."""

from __future__ import annotations

import time
from pathlib import Path

from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.live import LiveScreen
from lab.tui.widgets.chart import TimeChart
from tests.tui.test_screens import SIZE, _text


async def test_real_run_updates_charts_then_stops(experiments_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    app = LabApp(db, experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await pilot.press("down", "down")  # broken, caching, quick
        assert screen.current is not None and screen.current.name == "quick"
        await pilot.press("r")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveScreen)

        # Wait (bounded) for the first interval to reach the charts through the bridge.
        deadline = time.monotonic() + 30
        while not live.snapshot.t and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert live.snapshot.t, "no interval arrived"
        await pilot.pause(0.3)  # one redraw tick
        chart = live.query_one("#chart-throughput", TimeChart)
        assert chart.data is not None and chart.data.series[0].y, "chart not updated"
        assert live.snapshot.ok > 0
        assert f"{live.snapshot.ok:,}" in _text(app, "#counters")

        # One step up (+1 VU for a 2-VU plan), then stop.
        await pilot.press("plus")
        deadline = time.monotonic() + 1.5
        while not any(m.reason == "user" for m in live.snapshot.markers) and time.monotonic() < deadline:
            await pilot.pause(0.02)
        await pilot.press("s")
        await live.workers.wait_for_complete()
        await pilot.pause()
        assert not live.running
        assert live.snapshot.status == "aborted"
        assert "aborted" in _text(app, "#outcomes")

    with Store(db) as store:
        (run,) = store.list_runs()
        events = store.run_events(run.id)
        intervals = store.intervals(run.id)
    assert run.experiment == "quick" and run.status == "aborted" and run.reason == "stopped by user"
    assert intervals and run.summary is not None and run.summary.ok > 0
    assert any(e.reason == "user" and e.level == 3 for e in events)
