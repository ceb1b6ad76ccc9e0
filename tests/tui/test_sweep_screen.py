"""The Sweep screen, driven with Textual's Pilot over a real stored sweep."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.confirm import ConfirmScreen
from lab.tui.screens.history import HistoryScreen
from lab.tui.screens.sweep import SweepScreen
from lab.tui.widgets.sweep_chart import SweepChart
from tests.synthetic import record_synthetic_sweeps
from tests.tui.test_screens import plain
from tests.tui.waits import settle

# Known curves: the screen must show what the fit of these exact points gives.
CURVES = {"one": (50.0, 0.02, 0.001), "two": (50.0, 0.05, 0.004)}


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two stored sweeps (one per variant, 6 levels each) whose throughput follows known
    USL curves exactly; written through the StoreRecorder, as a real run would be, and fitted."""
    folder = tmp_path_factory.mktemp("sweepdb")
    db = folder / "r.db"
    record_synthetic_sweeps(folder, db, CURVES)
    return db


@pytest.fixture
def lab_app(sweep_db: Path, tmp_path: Path) -> LabApp:
    """The TUI on a copy of the sweep database, so a test may delete from it."""
    db = tmp_path / "r.db"
    shutil.copy(sweep_db, db)
    return LabApp(db, tmp_path)


async def _settle(pilot: Pilot[Any], app: LabApp) -> None:
    await pilot.pause()
    await settle(pilot, app)


async def test_sweep_screen_overlays_variants_with_fits(lab_app: LabApp) -> None:
    app = lab_app
    async with app.run_test(size=(120, 60)) as pilot:
        app.open_history()
        await pilot.pause()
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.press("w")  # the run under the cursor belongs to a sweep
        await _settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        # Newest first: the cursor sits on the last level of the second variant.
        chart = screen.query_one(SweepChart)
        assert [variant for variant, _a in chart.sweeps] == ["two"]
        tables = plain(screen.query_one("#sweep-tables", Static).content)
        assert "USL fits" in tables and "sweep of vus · two (sweep 2)" in tables
        assert "N*" in tables and "Little" in tables


async def test_sweep_screen_shows_two_sweeps_and_their_curves(lab_app: LabApp) -> None:
    app = lab_app
    async with app.run_test(size=(120, 60)) as pilot:
        app.push_screen(SweepScreen(sweep_ids=[1, 2]))
        await _settle(pilot, app)
        chart = app.screen.query_one(SweepChart)
        assert [variant for variant, _a in chart.sweeps] == ["one", "two"]
        assert all(a.usl is not None for _v, a in chart.sweeps)
        fits = {v: (a.usl.sigma, a.usl.kappa) for v, a in chart.sweeps if a.usl is not None}
        assert fits["one"] == (pytest.approx(0.02, rel=0.01), pytest.approx(0.001, rel=0.01))
        assert fits["two"] == (pytest.approx(0.05, rel=0.01), pytest.approx(0.004, rel=0.01))
        assert "USL fit" in str(chart.border_title)
        assert "one" in str(chart.border_title) and "two" in str(chart.border_title)


async def test_a_run_outside_any_sweep_says_so(lab_app: LabApp) -> None:
    app = lab_app
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(SweepScreen(run_ids=[999]))
        await _settle(pilot, app)
        shown = plain(app.screen.query_one("#sweep-tables", Static).content)
        assert "run 999 is not part of a sweep" in shown


async def test_sweep_chart_draws_the_measured_points_over_the_curve(lab_app: LabApp) -> None:
    # The points lie exactly on the fitted curve: each stays visible only when drawn after it.
    app = lab_app
    async with app.run_test(size=(120, 60)) as pilot:
        app.push_screen(SweepScreen(sweep_ids=[1]))
        await _settle(pilot, app)
        chart = app.screen.query_one(SweepChart)
        drawn = chart.render().plain  # type: ignore[union-attr]
        assert drawn.count("●") == 6, drawn  # the legend is in the border title, not here


async def test_history_shows_each_runs_sweep_and_level(lab_app: LabApp) -> None:
    app = lab_app
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_history()
        await _settle(pilot, app)
        table = app.screen.query_one("#runs-table", DataTable)
        assert "sweep" in [str(c.label) for c in table.columns.values()]
        first = [str(cell) for cell in table.get_row_at(0)]
        assert "2 · vus=32" in first  # newest first: the last level of the second sweep


async def test_delete_of_a_sweep_level_warns_and_drops_the_fit(lab_app: LabApp) -> None:
    app = lab_app
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_history()
        await _settle(pilot, app)
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.press("d")  # the cursor is on run 12, vus=32 of sweep 2
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        warning = plain(confirm.query_one("#confirm-warning", Static).content)
        assert "Run 12 is level 6 of 6 (vus=32) of sweep 2" in warning
        assert "its fit (N*) will be dropped: 5 completed levels left, a fit needs 6" in warning
        await pilot.press("y")
        await _settle(pilot, app)
        await _settle(pilot, app)
        assert [r.id for r in history.runs][:1] == [11]
        assert any("Run 12 deleted. Sweep 2: no fit now (5 completed levels left" in n.message
                   for n in app._notifications)
    with Store(app.db_path, readonly=True) as store:
        assert store.get_sweep(2).fits == [] and store.get_sweep(2).missing_levels == [32]
        assert [f["model"] for f in store.get_sweep(1).fits] == ["usl", "amdahl"]  # untouched


async def test_delete_of_a_plain_run_has_no_sweep_warning(fixture_db: Path, experiments_dir: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    async with app.run_test(size=(100, 32)) as pilot:
        app.open_history()
        await _settle(pilot, app)
        table = app.screen.query_one("#runs-table", DataTable)
        assert "sweep" not in [str(c.label) for c in table.columns.values()]  # no sweep stored
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and not app.screen.query("#confirm-warning")
        await pilot.press("n")


async def test_sweep_key_uses_the_cursor_when_the_selection_is_no_sweep(
        fixture_db: Path, experiments_dir: Path) -> None:
    record_synthetic_sweeps(experiments_dir.parent, fixture_db, CURVES, fit=False)
    app = LabApp(fixture_db, experiments_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_history()
        await _settle(pilot, app)
        history = app.screen
        assert isinstance(history, HistoryScreen)
        assert [r.id for r in history.shown][:5] == [4, 3, 2, 1, 16]  # plain runs are newer
        await pilot.press("space", "space", "up")  # select 4 and 3; the cursor back on 3
        assert history.selected == [4, 3]
        await pilot.press("w")
        await pilot.pause()
        assert app.screen is history
        assert any(n.message == "Runs 4 and 3 are not part of a sweep." for n in app._notifications)
        await pilot.press("down", "down")  # the cursor on run 1: outside the selection, no sweep
        await pilot.press("w")
        await pilot.pause()
        assert any(n.message == "Runs 4, 3 and 1 are not part of a sweep." for n in app._notifications)
        await pilot.press("down")  # run 16: the last level of sweep 2
        await pilot.press("w")
        await _settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        assert [v for v, _a in screen.query_one(SweepChart).sweeps] == ["two"]


async def test_sweep_chart_tells_variants_apart_by_marker(lab_app: LabApp) -> None:
    # Without colour (a monochrome terminal, a screenshot in print) the markers still differ.
    app = lab_app
    async with app.run_test(size=(120, 60)) as pilot:
        app.push_screen(SweepScreen(sweep_ids=[1, 2]))
        await _settle(pilot, app)
        chart = app.screen.query_one(SweepChart)
        drawn = chart.render().plain  # type: ignore[union-attr]
        assert "●" in drawn and "■" in drawn, drawn
        title = str(chart.border_title)
        assert "● one" in title and "■ two" in title, title
