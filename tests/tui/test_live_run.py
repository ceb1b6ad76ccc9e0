"""A real, short run from the TUI: target and generator processes, charts that move,
a live load change, and a stop that leaves the run stored as aborted."""

from __future__ import annotations

from pathlib import Path

import psutil

from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.live import LiveScreen
from lab.tui.widgets.chart import TimeChart
from tests.tui.test_screens import SIZE, _text
from tests.tui.waits import settle, wait_until


async def test_real_run_updates_charts_then_stops(experiments_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    app = LabApp(db, experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await pilot.press("down", "down")  # broken, caching, quick
        assert screen.current is not None and screen.current.name == "quick"
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen")
        live = app.screen
        assert isinstance(live, LiveScreen)

        # The first interval reaches the charts through the bridge, and the next redraw.
        chart = live.query_one("#chart-throughput", TimeChart)
        await wait_until(pilot, lambda: bool(live.snapshot.t), "the first interval")
        await wait_until(pilot, lambda: chart.data is not None and bool(chart.data.series[0].y),
                         "the chart to show it")
        assert live.snapshot.ok > 0
        await wait_until(pilot, lambda: live._drawn_version == live.snapshot.version, "a redraw")
        assert f"{live.snapshot.ok:,}" in _text(app, "#counters")

        # One step up (+1 VU for a 2-VU plan), then stop.
        await pilot.press("plus")
        await wait_until(pilot, lambda: any(m.reason == "user" for m in live.snapshot.markers),
                         "the load change")
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


PAIR = """\
[experiment]
title = "Two variants"
question = "Do n and q end real runs cleanly?"

[target]
app = "targets.testing:app"
ready_path = "/health"

[load]
model = "closed"
vus = 2
duration = "60s"
think_time = "10ms"
timeout = "2s"

[[load.requests]]
path = "/fast"

[[variants]]
name = "first"

[[variants]]
name = "second"
"""


async def test_n_then_q_end_real_runs_and_leave_no_process(tmp_path: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "pair.toml").write_text(PAIR)
    db = tmp_path / "results.db"
    app = LabApp(db, folder)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("a")  # every variant, in turn
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await wait_until(pilot, lambda: bool(live.snapshot.t) and live.snapshot.ok > 0,
                         "the first variant's first interval")
        # n: the first run ends (stored as skipped) and the second variant starts.
        await pilot.press("n")
        await wait_until(pilot, lambda: live.snapshot.index == 1 and bool(live.snapshot.t)
                         and live.snapshot.ok > 0, "the second variant's first interval")
        # q during a run: it is stopped and stored before the app exits.
        await pilot.press("q")
        await wait_until(pilot, lambda: not live.running, "the run to end", within_s=60)
    with Store(db, readonly=True) as store:
        runs = sorted(store.list_runs(), key=lambda r: r.id)
        targets = {pid for run in runs for r in store.resources(run.id, "target")
                   for pid in [r.pid] if pid is not None}
        measured = [bool(store.intervals(run.id)) for run in runs]
    assert [(r.variant, r.status, r.reason) for r in runs] == [
        ("first", "aborted", "skipped to the next variant by user"),
        ("second", "aborted", "stopped: the lab was closed"),
    ]
    assert measured == [True, True]
    # Each run had its own target, and both are gone (the no_orphans check looks for the
    # generator workers too).
    assert len(targets) == 2
    assert not [pid for pid in targets if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
