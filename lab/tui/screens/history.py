"""The History screen: every stored run in a table; filter, sort, select, compare, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from lab.analysis.sweep import MIN_FIT_LEVELS, delete_run_and_refit, fit_levels
from lab.errors import UnknownRunError
from lab.report.table import STATUS_STYLE, fmt_int, fmt_ms, fmt_rate, fmt_seconds, sweep_label
from lab.results import open_results
from lab.store import DatabaseGoneError, RunRecord
from lab.tui.messages import OpenCompare, OpenSweeps, RunDeleted, RunsLoaded
from lab.tui.screens.base import LabScreen, controls
from lab.tui.screens.confirm import ConfirmScreen
from lab.tui.screens.sweep import not_in_a_sweep

SELECTED_MARK = "●"


@dataclass(frozen=True)
class Column:
    """A column of the runs table: its header, how a run shows in it, how it sorts."""

    key: str
    label: str
    cell: Callable[[RunRecord], str | Text]
    sort: Callable[[RunRecord], Any]
    """Sort key; None sorts last whatever the direction."""
    justify: str = "left"


def _when(run: RunRecord) -> str:
    # UTC, as `lab runs` shows it, so the same run reads the same on every machine;
    # without the year, so the table fits 80 columns.
    return run.started_at[5:16].replace("T", " ")


def _s(run: RunRecord, get: Callable[[Any], Any]) -> Any:
    return get(run.summary) if run.summary is not None else None


def _right(value: str) -> Text:
    return Text(value, justify="right")


COLUMNS = (
    Column("id", "id", lambda r: _right(str(r.id)), lambda r: r.id, "right"),
    Column("experiment", "experiment", lambda r: r.experiment, lambda r: r.experiment),
    Column("variant", "variant", lambda r: r.variant, lambda r: r.variant),
    # Shown only when a stored run is a sweep level (see HistoryScreen.columns).
    Column("sweep", "sweep", sweep_label,
           lambda r: None if r.sweep_id is None else (r.sweep_id, r.sweep_level or 0.0)),
    Column("status", "status", lambda r: Text(r.status, style=STATUS_STYLE.get(r.status, "")),
           lambda r: r.status),
    Column("when", "started UTC", _when, lambda r: r.started_at_unix),
    Column("duration", "dur s", lambda r: _right(fmt_seconds(r.duration_s)), lambda r: r.duration_s,
           "right"),
    Column("rps", "req/s", lambda r: _right(fmt_rate(_s(r, lambda s: s.throughput_rps))),
           lambda r: _s(r, lambda s: s.throughput_rps), "right"),
    Column("p95", "p95 ms", lambda r: _right(fmt_ms(_s(r, lambda s: s.latency_ms.p95))),
           lambda r: _s(r, lambda s: s.latency_ms.p95), "right"),
    Column("errors", "err", lambda r: _right(fmt_int(_s(r, lambda s: s.errors))),
           lambda r: _s(r, lambda s: s.errors), "right"),
)


COLUMN_INDEX = {col.key: i for i, col in enumerate(COLUMNS)}


def _usable(run: RunRecord) -> bool:
    """A level a sweep's fit uses (as ``lab.analysis.sweep.analyse`` picks them)."""
    return run.status == "completed" and run.summary is not None and run.summary.throughput_rps > 0


def sweep_warning(run: RunRecord, runs: list[RunRecord]) -> str | None:
    """What deleting ``run`` does to the sweep it is a level of, for the confirmation; None
    for a run outside any sweep.

    Args:
        run: the run to delete.
        runs: every stored run (the run's sweep siblings among them).
    """
    if run.sweep_id is None:
        return None
    sweep = run.settings.sweep
    parameter = sweep.parameter if sweep is not None and sweep.parameter else "level"
    value = "?" if run.sweep_level is None else f"{run.sweep_level:g}"
    where = f"level {parameter}={value}"
    if sweep is not None and sweep.index is not None and sweep.levels:
        where = f"level {sweep.index + 1} of {len(sweep.levels)} ({parameter}={value})"
    head = f"Run {run.id} is {where} of sweep {run.sweep_id}"
    siblings = [r for r in runs if r.sweep_id == run.sweep_id and r.id != run.id]
    if not siblings:
        return f"{head}, its last run: the sweep and its fit go with it."
    if parameter in ("rate", "load.rate"):
        return f"{head}: its capacity at the SLO will be recomputed from the {len(siblings)} levels left."
    left = sum(_usable(r) for r in siblings)
    if left >= MIN_FIT_LEVELS:
        return f"{head}: its fit (N*) will be recomputed from the {left} completed levels left."
    if _usable(run) and left + 1 >= MIN_FIT_LEVELS:
        return (f"{head}: its fit (N*) will be dropped: {left} completed levels left, "
                f"a fit needs {MIN_FIT_LEVELS}.")
    return f"{head}: {left} completed levels left (too few for a fit; it needs {MIN_FIT_LEVELS})."


class SweepRunDeleted(RunDeleted):
    """A sweep level's run was deleted and its sweep fitted again."""

    def __init__(self, run_id: int, note: str) -> None:
        super().__init__(run_id)
        self.note = note
        """What happened to the sweep's fit, one line."""


def sort_runs(runs: list[RunRecord], column: Column, reverse: bool) -> list[RunRecord]:
    """Runs ordered by a column; runs without a value go last in either direction."""
    present = [r for r in runs if column.sort(r) is not None]
    missing = [r for r in runs if column.sort(r) is None]
    return sorted(present, key=column.sort, reverse=reverse) + missing


class HistoryScreen(LabScreen[None]):
    """The runs in ``results.db``, newest first."""

    BINDINGS = [
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("w", "sweep", "Sweep"),
        Binding("d", "delete", "Delete"),
        Binding("f", "filter", "Filter"),
        Binding("o", "sort", "Sort"),
        Binding("O", "reverse", "Reverse", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]
    HELP = ("space selects runs and c compares them (the first selected is the baseline); "
            "w shows the sweeps they belong to, overlaid; enter opens one run; clicking a "
            "column header sorts by it.")

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRecord] = []
        """Every stored run (unfiltered), as last read."""
        self.problem: str | None = None
        """Why the stored runs could not be read (``RunsLoaded.problem``), as last read."""
        self.selected: list[int] = []
        """Selected run ids, in the order they were selected."""
        self.experiment_filter: str | None = None
        """Only runs of this experiment; None for all."""
        self.sort_column = COLUMN_INDEX["when"]
        """Index in ``COLUMNS`` of the sort column (start time by default)."""
        self.sort_reverse = True
        """Newest (largest) first by default."""

    def compose(self) -> ComposeResult:
        """A status line above the runs table."""
        yield Header()
        yield Static(id="history-status")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        """Set up the columns and read the runs in a thread."""
        self.sub_title = "History"
        table = self.query_one("#runs-table", DataTable)
        self._set_columns(table)
        table.focus()
        self.load_runs()

    @property
    def columns(self) -> list[Column]:
        """The columns shown: all but "sweep" when no stored run is a sweep level (the
        table then fits 80 columns)."""
        sweeps = any(r.sweep_id is not None for r in self.runs)
        return [col for col in COLUMNS if sweeps or col.key != "sweep"]

    def _set_columns(self, table: DataTable) -> None:
        """(Re)create the table's columns when the shown set changed; the rows go too."""
        keys = ["mark", *(col.key for col in self.columns)]
        if [c.value for c in table.columns] == keys:
            return
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        for col in self.columns:
            table.add_column(col.label, key=col.key)

    def on_screen_resume(self) -> None:
        """Read again when coming back (a run may have ended, or one was deleted)."""
        if self.runs:
            self.load_runs()

    @work(thread=True, exclusive=True, group="history", exit_on_error=False, name="reading runs")
    def load_runs(self) -> None:
        """Read every stored run (a thread: a fresh, read-only connection, never the UI's)."""
        runs: list[RunRecord] = []
        try:
            store = self.lab.reading_store()
        except DatabaseGoneError as exc:
            self.post_message(RunsLoaded([], problem=str(exc)))
            return
        if store is not None:
            with store:
                runs = store.list_runs()
        self.post_message(RunsLoaded(runs))

    @on(RunsLoaded)
    def _runs_loaded(self, message: RunsLoaded) -> None:
        self.runs = message.runs
        self.problem = message.problem
        known = {r.id for r in self.runs}
        self.selected = [i for i in self.selected if i in known]
        self._fill()

    @property
    def shown(self) -> list[RunRecord]:
        """The runs in the table: filtered and sorted."""
        runs = [r for r in self.runs if self.experiment_filter in (None, r.experiment)]
        return sort_runs(runs, COLUMNS[self.sort_column], self.sort_reverse)

    def _fill(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        cursor_key = self._cursor_run_id()
        cursor_row = table.cursor_row
        table.clear()
        self._set_columns(table)
        columns = self.columns
        shown = self.shown
        for run in shown:
            mark = SELECTED_MARK if run.id in self.selected else ""
            table.add_row(mark, *(col.cell(run) for col in columns), key=str(run.id))
        if cursor_key is not None and shown:
            # The cursor follows its run; when that run is gone (deleted), it stays on the
            # same row, now its neighbour, as a file manager's does (the last row when it
            # was the last).
            index = next((i for i, r in enumerate(shown) if r.id == cursor_key),
                         min(max(cursor_row, 0), len(shown) - 1))
            table.move_cursor(row=index, animate=False)
        self._show_status()

    def _show_status(self) -> None:
        col = COLUMNS[self.sort_column]
        arrow = "↓" if self.sort_reverse else "↑"
        parts = [
            f"{len(self.shown)}/{len(self.runs)} runs",
            f"experiment: {self.experiment_filter or 'all'} (f)",
            f"sort: {col.label} {arrow} (o)",
        ]
        if self.selected:
            parts.append(f"selected {', '.join(str(i) for i in self.selected)}")
        if self.problem is not None:
            parts = [self.problem]
        elif not self.runs:
            parts = ["No runs stored yet: the presenter's runs appear here (ctrl+r reads them again)."
                     if self.lab.view_only else
                     "No runs stored yet: pick an experiment and run it (esc, then a)."]
        self.query_one("#history-status", Static).update(" · ".join(parts))

    def _cursor_run_id(self) -> int | None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(row_key.value) if row_key.value is not None else None

    def _cursor_run(self) -> RunRecord | None:
        run_id = self._cursor_run_id()
        return next((r for r in self.runs if r.id == run_id), None)

    # ------------------------------------------------------------------ keys

    def action_toggle_select(self) -> None:
        """Select or unselect the run under the cursor, then move down."""
        run_id = self._cursor_run_id()
        if run_id is None:
            return
        table = self.query_one("#runs-table", DataTable)
        if run_id in self.selected:
            self.selected.remove(run_id)
            mark = ""
        else:
            self.selected.append(run_id)
            mark = SELECTED_MARK
        table.update_cell(str(run_id), "mark", mark)
        table.action_cursor_down()
        self._show_status()

    def _chosen_ids(self) -> list[int]:
        """The selected runs, or the run under the cursor when none is (or none)."""
        if self.selected:
            return list(self.selected)
        run_id = self._cursor_run_id()
        return [] if run_id is None else [run_id]

    def action_compare(self) -> None:
        """Compare the selected runs (or the run under the cursor when none is)."""
        if ids := self._chosen_ids():
            self.post_message(OpenCompare(ids))

    def action_sweep(self) -> None:
        """Show the sweeps of the selected runs (or of the run under the cursor).

        The Help screen shows the paragraph above. When no selected run is a sweep level
        (or nothing is selected), the sweep of the run under the cursor is shown; when that
        is no sweep level either, a notification names the runs."""
        by_id = {r.id: r for r in self.runs}

        def in_sweep(run_id: int) -> bool:
            run = by_id.get(run_id)
            return run is not None and run.sweep_id is not None

        ids = [i for i in self.selected if in_sweep(i)]
        cursor = self._cursor_run_id()
        if not ids and cursor is not None and in_sweep(cursor):
            ids = [cursor]
        if ids:
            self.post_message(OpenSweeps(ids))
            return
        asked = list(self.selected) + ([cursor] if cursor is not None and cursor not in self.selected else [])
        if asked:
            text = not_in_a_sweep(asked)
            self.notify(f"{text[0].upper()}{text[1:]}.", severity="warning")

    @on(DataTable.RowSelected)
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        # Enter on a run opens it on its own (the table binds enter to "select").
        if event.row_key.value is not None:
            self.post_message(OpenCompare([int(event.row_key.value)]))

    @controls("delete runs")
    def action_delete(self) -> None:
        """Delete the run under the cursor, after a confirmation."""
        run = self._cursor_run()
        if run is None:
            return
        if run.id in self.lab.active_run_ids():
            self.notify("That run is going on: stop it first.", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.delete_run(run.id)

        question = (f"Delete run {run.id} ({run.experiment} / {run.variant}, {run.status})?\n"
                    "Its intervals, resources and summary go too.")
        self.app.push_screen(ConfirmScreen(question, yes_label="Delete",
                                           warning=sweep_warning(run, self.runs)), confirmed)

    @work(thread=True, group="history-delete", exit_on_error=False, name="deleting a run")
    def delete_run(self, run_id: int) -> None:
        """Delete one run (a thread); a sweep it was a level of is fitted again from the
        levels left, so no fit of the deleted level stays stored."""
        try:
            with open_results(self.lab.db_path) as store:
                sweep_id = store.get_run(run_id).sweep_id
                analysis = delete_run_and_refit(store, run_id)
        except UnknownRunError as exc:
            self.post_message(RunDeleted(run_id, str(exc)))
            return
        if sweep_id is None:
            self.post_message(RunDeleted(run_id))
        elif analysis is None:
            self.post_message(SweepRunDeleted(run_id, f"Sweep {sweep_id} went with its last run"))
        elif analysis.usl is not None and analysis.usl.n_star is not None:
            self.post_message(SweepRunDeleted(
                run_id, f"Sweep {sweep_id} refitted: N* ≈ {analysis.usl.n_star:.3g}"))
        elif analysis.usl is not None:
            self.post_message(SweepRunDeleted(run_id, f"Sweep {sweep_id} refitted: no peak"))
        elif analysis.parameter in ("rate", "load.rate"):
            self.post_message(SweepRunDeleted(run_id, f"Sweep {sweep_id}: capacity recomputed"))
        else:
            left = len(fit_levels(analysis.levels))  # an unmeasured level has throughput None
            self.post_message(SweepRunDeleted(run_id, f"Sweep {sweep_id}: no fit now ({left} completed "
                                                      f"levels left, a fit needs {MIN_FIT_LEVELS})"))

    @on(RunDeleted)
    def _run_deleted(self, message: RunDeleted) -> None:
        if message.error:
            self.notify(message.error, severity="error")
        else:
            if message.run_id in self.selected:
                self.selected.remove(message.run_id)
            note = f" {message.note}." if isinstance(message, SweepRunDeleted) else ""
            self.notify(f"Run {message.run_id} deleted.{note}")
        self.load_runs()

    def action_filter(self) -> None:
        """Show the next experiment's runs only (cycling through all experiments)."""
        names = sorted({r.experiment for r in self.runs})
        choices: list[str | None] = [None, *names]
        at = choices.index(self.experiment_filter) if self.experiment_filter in choices else 0
        self.experiment_filter = choices[(at + 1) % len(choices)]
        self._fill()

    def action_sort(self) -> None:
        """Sort by the next column.

        Only the columns shown take part (the sweep column is hidden without sweeps)."""
        shown = [COLUMN_INDEX[col.key] for col in self.columns]
        later = [i for i in shown if i > self.sort_column]
        self.sort_column = later[0] if later else shown[0]
        self._fill()

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.sort_reverse = not self.sort_reverse
        self._fill()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        index = next((i for i, c in enumerate(COLUMNS) if c.key == event.column_key.value), None)
        if index is None:
            return
        if index == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = index, False
        self._fill()

    def action_reload(self) -> None:
        """Read the runs again."""
        self.load_runs()

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.dismiss()
