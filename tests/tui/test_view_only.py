"""The TUI as an audience sees it (``lab tui --view-only``, what ``lab web`` serves a
room), and as a presenter sees a long title at 80×24.

Pilot tests with the fake engine: no process starts.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import Footer, Static

from lab.store import Store
from lab.tui.app import LabApp
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.help import HelpScreen
from lab.tui.screens.history import HistoryScreen
from lab.tui.screens.live import LiveScreen
from tests.synthetic import QUICK
from tests.tui.conftest import FakeEngine
from tests.tui.test_screens import SIZE, _settle, plain
from tests.tui.waits import wait_until

LONG_TITLE = ("How much throughput and tail latency does a read-through cache buy under a "
              "heavily skewed workload")


def _content(path: Path) -> bytes:
    return path.read_bytes()


def _messages(app: LabApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def _footer(app: LabApp) -> str:
    """The keys the current screen's footer shows, as plain text."""
    footer = app.screen.query_one(Footer)
    return " · ".join(str(key.render()) for key in footer.children)


async def _footer_drawn(pilot: object, app: LabApp) -> str:
    await wait_until(pilot, lambda: bool(app.screen.query_one(Footer).children), "the footer")  # type: ignore[arg-type]
    return _footer(app)


_NOT_IN_VIEW_ONLY = ("Run all", "Run variant", "Delete", "More", "Less", "Stop", "Next")
"""Footer labels of keys that start, stop, change or delete runs."""


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


async def test_view_only_footer_and_hints_offer_only_what_the_view_can_do(
        fixture_db: Path, experiments_dir: Path, tmp_path: Path) -> None:
    app = LabApp(fixture_db, experiments_dir, run_plan_fn=FakeEngine(), view_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        footer = await _footer_drawn(pilot, app)
        assert "History" in footer and "Variant" in footer, footer  # looking still works
        assert not [label for label in _NOT_IN_VIEW_ONLY if label in footer], footer
        await pilot.press("h")
        await _settle(pilot, app)
        assert isinstance(app.screen, HistoryScreen)
        footer = await _footer_drawn(pilot, app)
        assert "Compare" in footer and "Select" in footer, footer
        assert "Delete" not in footer, footer
    # An empty history tells a viewer where runs come from, not to run one.
    empty = LabApp(tmp_path / "none.db", experiments_dir, run_plan_fn=FakeEngine(), view_only=True)
    async with empty.run_test(size=SIZE) as pilot:
        await _settle(pilot, empty)
        await pilot.press("h")
        await _settle(pilot, empty)
        hint = plain(empty.screen.query_one("#history-status", Static).content)
        assert "No runs stored yet" in hint, hint
        assert "run it" not in hint and "then a" not in hint, hint
        assert "presenter" in hint, hint


async def test_the_presenter_footer_and_hints_offer_the_controls(experiments_dir: Path,
                                                                 tmp_path: Path) -> None:
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=FakeEngine())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        footer = await _footer_drawn(pilot, app)
        assert "Run all" in footer and "Run variant" in footer, footer
        await pilot.press("h")
        await _settle(pilot, app)
        footer = await _footer_drawn(pilot, app)
        assert "Delete" in footer, footer
        hint = plain(app.screen.query_one("#history-status", Static).content)
        assert "run it (esc, then a)" in hint, hint


async def test_view_only_help_lists_only_the_keys_the_view_has(fixture_db: Path,
                                                               experiments_dir: Path) -> None:
    app = LabApp(fixture_db, experiments_dir, run_plan_fn=FakeEngine(), view_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, app)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = plain(app.screen.query_one("#help-keys", Static).content)
        for words in ("Select or unselect", "Compare the selected", "Open the stored runs", "Quit"):
            assert words in text, words
        for words in ("Run every variant", "Run only the highlighted variant", "Delete the run",
                      "Stop the run", "Raise VUs", "runs it", "change the load"):
            assert words not in text, words
