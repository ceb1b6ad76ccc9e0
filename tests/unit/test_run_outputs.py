"""What ``lab run`` shows at the edges, without a run: a deliberately short run is summarised
from half a second, the run table's captions, and the History screen's cursor after a delete.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from lab.analysis.summary import (
    MIN_MEASURED_S,
    MIN_SHORT_RUN_S,
    min_measured_for,
    planned_measured_s,
)
from lab.plan import plan_runs
from lab.report.table import comparison_table, render
from lab.spec import load_experiment
from lab.store import RunRecord, Store
from lab.tui.app import LabApp
from lab.tui.screens.confirm import ConfirmScreen
from lab.tui.screens.history import HistoryScreen
from tests.conftest import write_experiment
from tests.synthetic import QUICK, T0, record, summary_of, synthetic_events
from tests.tui.waits import settle, wait_until

# ------------------------------------------------------------------ the run table's captions


def _record(run_id: int, status: str, summary: object = None, reason: str | None = None) -> RunRecord:
    return RunRecord(id=run_id, experiment="pooling", variant=f"v{run_id}", status=status, reason=reason,
                     started_at="2026-01-01T00:00:00Z", ended_at=None, duration_s=3.0, config={},
                     lab_version="0", host={}, target_url=None, summary=summary)  # type: ignore[arg-type]


def test_a_deliberately_short_run_is_summarised_from_half_a_second() -> None:
    # A sweep's 0.6 s levels (tests/test_sweep.py) are summarised; 1 ms is not; a run
    # planned for a second or more needs a second, as one that stopped early always did.
    assert min_measured_for(planned_measured_s(0.6, 0.0)) == pytest.approx(0.6)
    assert min_measured_for(planned_measured_s(0.001, 0.0)) == MIN_SHORT_RUN_S
    assert min_measured_for(planned_measured_s(10.0, 1.0)) == MIN_MEASURED_S
    # The window starts at the first whole interval after the warm-up.
    assert planned_measured_s(2.0, 0.5) == 1.0 and planned_measured_s(1.5, 0.5) == 0.5
    assert min_measured_for(planned_measured_s(0.8, 0.5)) == MIN_SHORT_RUN_S


def test_the_change_caption_shows_only_with_change_lines(tmp_path: Path) -> None:
    failed = [_record(26, "failed", reason="initdb failed with code 1"),
              _record(27, "failed", reason="initdb failed with code 1")]
    text = render(comparison_table(failed), width=120)
    assert "second line" not in text and "run 26 failed: initdb failed" in text
    quick = load_experiment(write_experiment(tmp_path, QUICK, "quick"))
    events = synthetic_events(plan_runs(quick)[0], "k", 100, 20.0, 3, T0)
    measured = summary_of(events, 0, 0.5, 60_000_000, None)
    text = render(comparison_table([_record(1, "completed", measured), failed[0]]), width=120)
    assert "second line" not in text  # the failed run has no figures to compare
    faster = summary_of(synthetic_events(plan_runs(quick)[0], "k2", 200, 10.0, 3, T0), 0, 0.5,
                        60_000_000, None)
    both = [_record(1, "completed", measured), _record(2, "completed", faster)]
    assert "second line: change vs run 1 (v1)" in render(comparison_table(both), width=120)


# ------------------------------------------------------------------ History: the cursor after a delete


async def test_history_keeps_the_cursor_row_after_a_delete(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    plan = plan_runs(load_experiment(write_experiment(experiments, QUICK, "quick")))[0]
    db = tmp_path / "fixture.db"
    with Store(db) as store:
        for k in range(4):
            events = synthetic_events(plan, f"run{k}", 100, 20.0, 3, T0 + 100 * k)
            record(store, events, "completed", None, T0 + 100 * k + 4, summary_of(events, 0, 0.5, 1, None))
    app = LabApp(db, experiments)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the History screen")
        await settle(pilot, app)
        history = app.screen
        assert isinstance(history, HistoryScreen)
        table = history.query_one("#runs-table", DataTable)
        assert [r.id for r in history.shown] == [4, 3, 2, 1]

        async def delete_at_cursor() -> None:
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the delete question")
            await pilot.press("y")
            await wait_until(pilot, lambda: app.screen is history, "the History screen again")
            await settle(pilot, app)

        await pilot.press("down")
        await delete_at_cursor()  # run 3, on the second row
        # The cursor stays on the second row, now run 2 (it went back to run 4, on top).
        assert [r.id for r in history.shown] == [4, 2, 1]
        assert table.cursor_row == 1 and history._cursor_run_id() == 2
        await pilot.press("down")
        await delete_at_cursor()  # run 1, the last row: the cursor goes to the new last
        assert [r.id for r in history.shown] == [4, 2]
        assert table.cursor_row == 1 and history._cursor_run_id() == 2
