"""Pilot tests of every screen and flow, on the fixture database and the fake engine."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static

from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.confirm import ConfirmScreen
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.help import HelpScreen, key_text
from lab.tui.screens.history import COLUMN_INDEX, COLUMNS, HistoryScreen
from lab.tui.screens.live import LiveScreen
from lab.tui.widgets.chart import TimeChart
from tests.tui.conftest import FakeEngine
from tests.tui.waits import settle, wait_until

SIZE = (100, 32)


def plain(content: object, width: int = 200) -> str:
    """A Static's content (text or a rich renderable) as plain text."""
    console = Console(width=width, color_system=None, file=io.StringIO())
    console.print(content)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _text(app: LabApp, selector: str) -> str:
    """The plain text a Static of the current screen shows."""
    return plain(app.screen.query_one(selector, Static).content)


async def _settle(pilot: Pilot[None], app: LabApp) -> None:
    await settle(pilot, app)


def _live(app: LabApp) -> LiveScreen | None:
    return app.screen if isinstance(app.screen, LiveScreen) else None


async def test_experiments_screen_lists_valid_and_invalid_files(experiments_dir: Path,
                                                                tmp_path: Path) -> None:
    app = LabApp(tmp_path / "r.db", experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        assert [e.name for e in screen.entries] == ["broken", "caching", "quick"]
        broken = screen.entries[0]
        assert broken.error == "broken.toml:8: load.vus: must be >= 1 (got -3)"
        listing = screen.query_one("#experiment-list", OptionList)
        assert "must be >= 1" in str(listing.get_option_at_index(0).prompt)
        assert "invalid" in _text(app, "#experiment-text")
        # Running an invalid experiment only says why.
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen)
        await pilot.press("down")
        await pilot.pause()
        details = _text(app, "#experiment-text")
        assert "Caching an expensive endpoint" in details and "What to look for" in details
        assert "targets.catalog:app" in details and "closed model, 32 VUs, 20 s" in details
        variants = screen.query_one("#variant-list", OptionList)
        assert variants.option_count == 2 and variants.highlighted == 0
        await pilot.press("v")
        assert variants.highlighted == 1
        await pilot.press("v")
        assert variants.highlighted == 0


async def test_run_one_variant_then_next_and_stop(experiments_dir: Path, tmp_path: Path) -> None:
    engine = FakeEngine()
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("down", "v", "r")  # caching, second variant (lru) only
        await wait_until(pilot, lambda: _live(app) is not None and bool(engine.started), "the run")
        live = app.screen
        assert isinstance(live, LiveScreen)
        assert engine.started == ["lru"]
        await pilot.press("escape")  # refused while running
        assert app.screen is live
        await pilot.press("s")
        await live.workers.wait_for_complete()
        await pilot.pause()
        assert not live.running and engine.stop_reasons == ["stopped by user"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen)
        # All variants: n ends the first and starts the second.
        await pilot.press("a")
        await wait_until(pilot, lambda: _live(app) is not None and len(engine.started) == 2,
                         "the first run of all variants")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await pilot.press("n")
        await wait_until(pilot, lambda: len(engine.started) == 3 and live.snapshot.index == 1,
                         "the next variant's run")
        assert engine.started == ["lru", "no-cache", "lru"]
        assert live.running and live.snapshot.index == 1
        await pilot.press("s")
        await live.workers.wait_for_complete()
        await pilot.pause()
    with Store(tmp_path / "r.db") as store:
        runs = store.list_runs()
    assert [(r.variant, r.status, r.reason) for r in reversed(runs)] == [
        ("lru", "aborted", "stopped by user"),
        ("no-cache", "aborted", "skipped to the next variant by user"),
        ("lru", "aborted", "stopped by user"),
    ]


async def test_live_screen_shows_counters_warning_and_markers(experiments_dir: Path, tmp_path: Path) -> None:
    engine = FakeEngine(seconds=8, generator_cpu=95.0)
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine, autorun="caching:lru")
    async with app.run_test(size=SIZE) as pilot:
        # Drawn once every event the engine sent is (8 intervals, the warning).
        await wait_until(pilot, lambda: _live(app) is not None and "10,440" in _text(app, "#counters"),
                         "the counters of 8 intervals")
        live = app.screen
        assert isinstance(live, LiveScreen)
        counters = _text(app, "#counters")
        assert "requests" in counters and "10,440" in counters
        warning = live.query_one("#generator-warning", Static)
        assert warning.display and "results may be limited by the load generator" in plain(warning.content)
        chart = live.query_one("#chart-throughput", TimeChart)
        assert chart.data is not None and len(chart.data.series[0].x) == 8
        assert (6.0, "warning") in chart.data.markers  # the user's load change
        resources = _text(app, "#resources")
        assert "target CPU" in resources and "generator CPU" in resources and "system CPU" in resources
        assert "32 VUs" not in _text(app, "#run-clock") and "40 VUs" in _text(app, "#run-clock")
        # Quitting during a run stops it and waits for the engine before exiting.
        await pilot.press("q")
        await pilot.pause()
    assert engine.stop_reasons == ["stopped: the lab was closed"]
    with Store(tmp_path / "r.db") as store:
        (run,) = store.list_runs()
    assert run.status == "aborted"


async def test_charts_follow_the_run_as_it_goes(experiments_dir: Path, tmp_path: Path) -> None:
    gate = asyncio.Event()
    engine = FakeEngine(seconds=10, gate=gate)
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine, autorun="quick")
    async with app.run_test(size=SIZE) as pilot:
        def points() -> int:
            live = _live(app)
            chart = live.query_one("#chart-latency", TimeChart) if live is not None else None
            return len(chart.data.series[1].x) if chart is not None and chart.data is not None else 0

        # The first half of the run, drawn; then nothing more until the gate opens.
        await wait_until(pilot, lambda: points() == 5, "the first 5 intervals on the chart")
        live = app.screen
        assert isinstance(live, LiveScreen)
        gate.set()
        await wait_until(pilot, lambda: points() == 10, "the other 5 intervals on the chart")
        assert "13,080" in _text(app, "#counters")
        await pilot.press("s")
        await live.workers.wait_for_complete()


async def test_plus_minus_need_a_running_load(experiments_dir: Path, tmp_path: Path) -> None:
    engine = FakeEngine(seconds=0)
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine, autorun="quick")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: _live(app) is not None and bool(engine.started), "the run")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await pilot.press("plus")
        await wait_until(pilot, lambda: any("not started" in n.message for n in app._notifications),
                         "the notification")
        await pilot.press("s")
        await live.workers.wait_for_complete()


async def test_history_filter_sort_select_and_compare(fixture_db: Path, experiments_dir: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("h")
        await _settle(pilot, app)
        history = app.screen
        assert isinstance(history, HistoryScreen)
        table = history.query_one("#runs-table", DataTable)
        assert table.row_count == 4
        assert [r.id for r in history.shown] == [4, 3, 2, 1]  # newest first
        await pilot.press("f")
        assert {r.experiment for r in history.shown} == {"caching"} and table.row_count == 3
        await pilot.press("f")
        assert {r.experiment for r in history.shown} == {"quick"}
        await pilot.press("f")
        assert table.row_count == 4
        # Sort by throughput (o moves the sort column on), then reverse it.
        while COLUMNS[history.sort_column].key != "rps":
            await pilot.press("o")
        assert [r.id for r in history.shown][0] == 1 or history.sort_reverse
        await pilot.press("O")
        first = [r.summary.throughput_rps for r in history.shown if r.summary]
        assert first == sorted(first) or first == sorted(first, reverse=True)
        # Back to newest first, select runs 1 and 2 (cursor rows 3 and 2), compare.
        history.sort_column, history.sort_reverse = COLUMN_INDEX["when"], True
        history._fill()
        await pilot.press("down", "down", "space", "space")
        assert history.selected == [2, 1]
        await pilot.press("c")
        await _settle(pilot, app)
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        assert [r.id for r in compare.runs] == [2, 1] and compare.baseline == 0
        table_text = _text(app, "#compare-table")
        assert "lru" in table_text and "no-cache" in table_text and "change vs run 2 (lru)" in table_text
        assert "Resources" in _text(app, "#compare-resources")
        tput = compare.query_one("#compare-throughput", TimeChart)
        assert tput.data is not None and [s.label for s in tput.data.series] == ["#2 lru", "#1 no-cache"]
        await pilot.press("b")
        assert compare.baseline == 1 and "change vs run 1 (no-cache)" in _text(app, "#compare-table")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is history


async def test_delete_asks_first(fixture_db: Path, experiments_dir: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("h")
        await _settle(pilot, app)
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await _settle(pilot, app)
        assert app.screen is history and len(history.runs) == 4
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await _settle(pilot, app)
        await _settle(pilot, app)
        assert [r.id for r in history.runs] == [3, 2, 1]
    with Store(fixture_db) as store:
        assert [r.id for r in store.list_runs()] == [3, 2, 1]


async def test_help_lists_every_key(experiments_dir: Path, tmp_path: Path) -> None:
    app = LabApp(tmp_path / "r.db", experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one("#help-keys", Static).content)
        for _title, cls, _hint in app.sections():
            for binding in cls.BINDINGS:
                assert key_text(binding) in text, binding
        for words in ("Run every variant", "Run only the highlighted variant", "Stop the run",
                      "start the next one", "Select or unselect", "Compare the selected",
                      "Delete the run", "baseline", "Quit", "Raise VUs", "Lower VUs", "enter opens"):
            assert words in text, words
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen)


async def test_compare_of_a_missing_run_says_so(fixture_db: Path, experiments_dir: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        app.open_compare([1, 99])
        await _settle(pilot, app)
        assert "no run with id 99" in _text(app, "#compare-table")


async def test_history_of_an_empty_database(tmp_path: Path, experiments_dir: Path) -> None:
    app = LabApp(tmp_path / "empty.db", experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("h")
        await _settle(pilot, app)
        assert "No runs stored yet" in _text(app, "#history-status")
        await pilot.press("c", "d", "space")  # nothing to act on: no crash
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)


async def test_history_and_compare_after_the_database_was_deleted_say_so(
        fixture_db: Path, experiments_dir: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("h")
        await _settle(pilot, app)
        assert app.screen.query_one("#runs-table", DataTable).row_count == 4
        await pilot.press("escape")
        await _settle(pilot, app)
        await asyncio.to_thread(fixture_db.unlink)
        await pilot.press("h")
        await _settle(pilot, app)
        status = " ".join(_text(app, "#history-status").split())
        assert f"{fixture_db}: the results database was deleted while the lab was open" in status, status
        assert "no run has been kept elsewhere since" in status, status
        assert "No runs stored yet" not in status
        # A run recorded since was kept beside it (the recorder's keep_if_gone): named.
        spare = fixture_db.with_name(f"{fixture_db.stem}.unsaved-0123456789ab.db")
        with Store(spare):
            pass
        await pilot.press("escape")
        await _settle(pilot, app)
        await pilot.press("h")
        await _settle(pilot, app)
        status = " ".join(_text(app, "#history-status").split())
        assert f"the runs kept since are in {spare}" in status, status
        app.open_compare([1, 2])
        await _settle(pilot, app)
        shown = " ".join(_text(app, "#compare-table").split())
        assert "deleted while the lab was open" in shown and str(spare) in shown, shown
