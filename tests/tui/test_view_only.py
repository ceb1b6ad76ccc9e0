"""The TUI as an audience sees it (``lab tui --view-only``, what ``lab web`` serves a
room), and as a presenter sees a long title at 80×24.

Pilot tests with the fake engine: no process starts.
"""

from __future__ import annotations

import time
from pathlib import Path

from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.history import HistoryScreen
from lab.tui.screens.live import LiveScreen
from tests.synthetic import QUICK
from tests.tui.conftest import FakeEngine
from tests.tui.test_screens import SIZE, _settle

LONG_TITLE = ("How much throughput and tail latency does a read-through cache buy under a "
              "heavily skewed workload")


def _content(path: Path) -> bytes:
    return path.read_bytes()


def _messages(app: LabApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_view_only_keys_that_start_or_delete_do_nothing_and_say_so(
        fixture_db: Path, experiments_dir: Path) -> None:
    engine = FakeEngine()
    app = LabApp(fixture_db, experiments_dir, run_plan_fn=engine, view_only=True)
    before = _content(fixture_db)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("down")  # caching, a valid experiment
        await pilot.press("r", "a")  # run the variant, run all
        app.screen.query_one("#variant-list").focus()
        await pilot.press("enter")  # enter on a variant runs it
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen)
        assert engine.started == []
        assert _messages(app).count("view-only: this view cannot start runs; the presenter's lab "
                                    "has the controls") == 3
        await pilot.press("h")
        await _settle(pilot, app)
        assert isinstance(app.screen, HistoryScreen) and len(app.screen.runs) == 4
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)  # no confirmation to answer
        assert any(m.startswith("view-only: this view cannot delete runs") for m in _messages(app))
        # What only looks still works: compare the run under the cursor.
        await pilot.press("c")
        await _settle(pilot, app)
        assert type(app.screen).__name__ == "CompareScreen"
    assert _content(fixture_db) == before  # not even opened for writing
    with Store(fixture_db, readonly=True) as store:
        assert len(store.list_runs()) == 4


async def test_the_presenter_keeps_the_controls(experiments_dir: Path, tmp_path: Path) -> None:
    engine = FakeEngine()
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("down", "r")
        await pilot.pause(0.3)
        assert isinstance(app.screen, LiveScreen) and engine.started == ["no-cache"]
        await pilot.press("s")
        await app.screen.workers.wait_for_complete()
    assert not any(m.startswith("view-only") for m in _messages(app))


async def test_a_long_title_ends_in_an_ellipsis_at_80x24(tmp_path: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "long-title.toml").write_text(QUICK.replace('title = "Quick check"', f'title = "{LONG_TITLE}"'))
    engine = FakeEngine()
    app = LabApp(tmp_path / "r.db", folder, run_plan_fn=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot, app)
        await pilot.press("r")
        live = app.screen
        assert isinstance(live, LiveScreen)
        deadline = time.monotonic() + 10
        while not live.snapshot.t and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.4)  # a redraw tick
        head = live.query_one("#run-title")
        line = head.render_line(0).text.rstrip()
        assert head.size.height == 1
        assert line.startswith(LONG_TITLE[:30]) and "…" in line, line
        assert line.endswith("long-title / default"), line  # which run: never cut off
        await pilot.resize_terminal(60, 24)
        await pilot.pause(0.4)
        narrower = head.render_line(0).text.rstrip()
        assert len(narrower) < len(line) and "…" in narrower and narrower.endswith("long-title / default")
        await pilot.press("s")
        await live.workers.wait_for_complete()
