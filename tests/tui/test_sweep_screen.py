"""The Sweep screen, driven with Textual's Pilot over a real stored sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Static

from lab.analysis.summary import Latency, Summary
from lab.events import RunFinished, RunStarted
from lab.plan import plan_runs
from lab.spec import load_experiment
from lab.store import Recorder, Store
from lab.tui.app import LabApp
from lab.tui.screens.history import HistoryScreen
from lab.tui.screens.sweep import SweepScreen
from lab.tui.widgets.sweep_chart import SweepChart
from tests.conftest import REPO, write_experiment
from tests.tui.conftest import HOST
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


# Known curves: the screen must show what the fit of these exact points gives.
CURVES = {"one": (50.0, 0.02, 0.001), "two": (50.0, 0.05, 0.004)}


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two stored sweeps (one per variant, 6 levels each) whose throughput follows known
    USL curves exactly; written through the Recorder, as a real run would be."""
    folder = tmp_path_factory.mktemp("sweepdb")
    db = folder / "r.db"
    plans = plan_runs(load_experiment(write_experiment(folder, SWEEP)))
    with Store(db) as store:
        recorder = Recorder(store)
        for i, plan in enumerate(plans):
            assert plan.sweep is not None
            lam, sigma, kappa = CURVES[plan.variant]
            n = plan.sweep.level
            x = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
            r_ms = n / x * 1000
            lat = Latency(p50=r_ms, p90=r_ms * 1.2, p95=r_ms * 1.3, p99=r_ms * 1.5, max=r_ms * 2,
                          mean=r_ms, count=int(x * 2))
            summary = Summary(requests=int(x * 2), ok=int(x * 2), errors=0, dropped=0, interrupted=0,
                              bytes=0, window_s=2.0, throughput_rps=x, attempts_rps=x, latency_ms=lat,
                              latency_all_ms=lat, service_ms=lat, error_rate=0.0)
            key = f"sweep-{i}"
            recorder(RunStarted(key, plan, 1_700_000_000.0 + i, HOST, "0.1.0"))
            recorder(RunFinished(key, "completed", None, 1_700_000_002.0 + i, summary, {}))
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
        fits = {v: (a.usl.sigma, a.usl.kappa) for v, a in chart.sweeps if a.usl is not None}
        assert fits["one"] == (pytest.approx(0.02, rel=0.01), pytest.approx(0.001, rel=0.01))
        assert fits["two"] == (pytest.approx(0.05, rel=0.01), pytest.approx(0.004, rel=0.01))
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
