"""The Experiments screen's right pane as a user sees it: "what to look for" on screen
without scrolling, and a run this machine cannot do refused before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from lab.plan import usable_cores
from lab.tui.app import LabApp
from lab.tui.screens.experiments import ExperimentsScreen
from tests.conftest import REPO
from tests.tui.conftest import FakeEngine


def _visible_text(app: LabApp, selector: str) -> str:
    """The text the user sees inside a widget's region right now, lines joined by spaces.

    Read from the screen's rendered strips (Textual's compositor: what reaches the
    terminal), so a line scrolled out of view or hidden under the variant list is absent.
    """
    region = app.screen.query_one(selector).scrollable_content_region
    strips = app.screen._compositor.render_strips()
    rows = strips[region.y:region.y + region.height]
    return " ".join(" ".join(row.crop(region.x, region.x + region.width).text.split()) for row in rows)


async def _settle(pilot: Pilot[Any], app: LabApp) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_look_for_is_visible_without_scrolling_for_every_bundled_experiment(tmp_path: Path) -> None:
    app = LabApp(tmp_path / "r.db", REPO / "experiments")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        with_look_for = [e for e in screen.entries if e.look_for]
        assert len(with_look_for) >= 10  # the bundled catalog; each one is checked below
        for index, entry in enumerate(screen.entries):
            if index:
                await pilot.press("down")
                await pilot.pause()
            if not entry.look_for:
                continue
            seen = _visible_text(app, "#experiment-details")
            assert entry.title in seen
            assert "What to look for" in seen, entry.name
            assert " ".join(entry.look_for.split()) in seen, f"{entry.name}: look_for cut off: {seen}"


async def test_look_for_starts_on_screen_at_80x24(tmp_path: Path) -> None:
    app = LabApp(tmp_path / "r.db", REPO / "experiments")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot, app)
        entry = next(e for e in app.screen.entries if e.name == "caching")  # type: ignore[attr-defined]
        for _ in range(app.screen.entries.index(entry)):  # type: ignore[attr-defined]
            await pilot.press("down")
        await pilot.pause()
        seen = _visible_text(app, "#experiment-details")
        first_words = " ".join(entry.look_for.split()[:6])
        assert "What to look for" in seen and first_words in seen, seen


async def test_more_cores_than_usable_is_refused_before_a_run(experiments_dir: Path, tmp_path: Path) -> None:
    cores = usable_cores()
    (experiments_dir / "quick.toml").write_text((experiments_dir / "quick.toml").read_text().replace(
        'ready_path = "/health"', f'ready_path = "/health"\ncpus = {cores + 1}'))
    engine = FakeEngine(hold=False)
    app = LabApp(tmp_path / "r.db", experiments_dir, run_plan_fn=engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await _settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await pilot.press("down", "down", "a")  # broken, caching, quick
        await pilot.pause()
        assert isinstance(app.screen, ExperimentsScreen) and engine.started == []
        assert any(f"target.cpus: {cores + 1} cores asked, this machine has {cores} usable" in n.message
                   for n in app._notifications)
    assert not (tmp_path / "r.db").exists()
