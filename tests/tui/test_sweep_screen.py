"""The Sweep screen, driven with Textual's Pilot over a real stored sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Static

from lab.tui.app import LabApp
from lab.tui.screens.history import HistoryScreen
from lab.tui.screens.sweep import SweepScreen
from lab.tui.widgets.sweep_chart import SweepChart
from tests.conftest import REPO, run_lab, write_experiment
from tests.tui.test_screens import plain

SWEEP = f"""
    [experiment]
    title = "tiny sweep"
    [target]
    app = "targets.usl_demo:app"
    app_dir = "{REPO}"
    env = {{ USL_WORK_MS = "10", USL_SERIAL_MS = "1" }}
    [load]
    vus = 1
    [[load.requests]]
    path = "/work"
    [sweep]
    parameter = "vus"
    levels = [1, 2, 4, 8, 16, 32]
    duration = "1s"
    [[variants]]
    name = "one"
    [[variants]]
    name = "two"
    target.env = {{ USL_SERIAL_MS = "2" }}
"""


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweepdb")
    db = folder / "r.db"
    res = run_lab("run", str(write_experiment(folder, SWEEP)), "--db", str(db), "-q", timeout=180)
    assert res.returncode == 0, res.stderr
    return db


async def test_sweep_screen_overlays_variants_with_fits(sweep_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    shutil.copy(sweep_db, db)
    app = LabApp(db, tmp_path)
    async with app.run_test(size=(120, 60)) as pilot:
        app.open_history()
        await pilot.pause()
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.press("w")  # the run under the cursor belongs to a sweep
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        # Newest first: the cursor sits on the last level of the second variant.
        chart = screen.query_one(SweepChart)
        assert [variant for variant, _a in chart.sweeps] == ["two"]
        tables = plain(screen.query_one("#sweep-tables", Static).content)
        assert "USL fits" in tables and "sweep of vus · two (sweep 2)" in tables
        assert "N*" in tables and "Little" in tables


async def test_sweep_screen_shows_two_sweeps_and_their_curves(sweep_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    shutil.copy(sweep_db, db)
    app = LabApp(db, tmp_path)
    async with app.run_test(size=(120, 60)) as pilot:
        app.push_screen(SweepScreen(sweep_ids=[1, 2]))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        chart = app.screen.query_one(SweepChart)
        assert [variant for variant, _a in chart.sweeps] == ["one", "two"]
        assert all(a.usl is not None for _v, a in chart.sweeps)
        assert "USL fit" in str(chart.border_title)
        assert "one" in str(chart.border_title) and "two" in str(chart.border_title)


async def test_a_run_outside_any_sweep_says_so(tmp_path: Path, sweep_db: Path) -> None:
    db = tmp_path / "r.db"
    shutil.copy(sweep_db, db)
    app = LabApp(db, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(SweepScreen(run_ids=[999]))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        shown = plain(app.screen.query_one("#sweep-tables", Static).content)
        assert "run 999 is not part of a sweep" in shown
