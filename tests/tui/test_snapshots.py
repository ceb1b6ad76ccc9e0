"""Snapshot tests of the main screens at 80×24 (the smallest terminal we promise).

Built from the fixed fixture database and the fake engine (fixed timestamps and
names, no clock, no random), so a snapshot changes only when the screen does. Made
with textual 8.2.8; after an intended change run
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from lab.topology.services import find_components
from lab.tui.app import LabApp
from lab.tui.screens.live import LiveScreen
from tests.tui.conftest import FakeEngine
from tests.tui.fleet_events import FLEET_TOML, fleet_events
from tests.tui.waits import wait_until

SMALL = (80, 24)


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_experiments_screen(snap_compare: Any, experiments_dir: Path, fixture_db: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    assert snap_compare(app, press=["down"], terminal_size=SMALL, run_before=_settle)


def test_experiments_screen_invalid_file_light_theme(snap_compare: Any, experiments_dir: Path,
                                                     fixture_db: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)

    async def light(pilot: Pilot[Any]) -> None:
        pilot.app.theme = "textual-light"
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SMALL, run_before=light)


async def _live_drawn(pilot: Pilot[Any]) -> None:
    """Wait (bounded) until the Live screen has drawn every event the fake engine sent."""
    def drawn() -> bool:
        live = pilot.app.screen
        return (isinstance(live, LiveScreen) and live.snapshot.version == live._drawn_version
                and bool(live.snapshot.t))

    await wait_until(pilot, drawn, "the Live screen to draw the run")
    await pilot.pause()


def test_live_screen(snap_compare: Any, experiments_dir: Path, tmp_path: Path) -> None:
    engine = FakeEngine(seconds=12, generator_cpu=96.0)
    app = LabApp(tmp_path / "live.db", experiments_dir, run_plan_fn=engine, autorun="caching")
    assert snap_compare(app, terminal_size=SMALL, run_before=_live_drawn)


def test_live_screen_large(snap_compare: Any, experiments_dir: Path, tmp_path: Path) -> None:
    engine = FakeEngine(seconds=12)
    app = LabApp(tmp_path / "live.db", experiments_dir, run_plan_fn=engine, autorun="caching:lru")
    assert snap_compare(app, terminal_size=(160, 48), run_before=_live_drawn)


def test_live_screen_with_replicas(snap_compare: Any, tmp_path: Path) -> None:
    # A run behind a balancer at 80×24: the replicas chart (the load chart left out for
    # room) and the replica table, from synthetic replica events (tests.tui.fleet_events).
    if not find_components()["nginx"].usable:
        pytest.skip("nginx is not installed: the lab skips a variant with a [balancer]")
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "fleet.toml").write_text(FLEET_TOML)
    engine = FakeEngine(seconds=12, extra=fleet_events)
    app = LabApp(tmp_path / "live.db", folder, run_plan_fn=engine, autorun="fleet")
    assert snap_compare(app, terminal_size=SMALL, run_before=_live_drawn)


def test_history_screen(snap_compare: Any, experiments_dir: Path, fixture_db: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)

    async def history(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("h")
        await _settle(pilot)
        await pilot.press("down", "down", "space", "space")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SMALL, run_before=history)


def test_compare_screen(snap_compare: Any, experiments_dir: Path, fixture_db: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)

    async def compare(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        pilot.app.open_compare([1, 2])  # type: ignore[attr-defined]
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SMALL, run_before=compare)


def test_help_screen(snap_compare: Any, experiments_dir: Path, fixture_db: Path) -> None:
    app = LabApp(fixture_db, experiments_dir)
    assert snap_compare(app, press=["question_mark"], terminal_size=SMALL, run_before=_settle)
