"""The Sweep screen: a sweep's measured points and fitted curve with N*, several
variants overlaid, above the per-level tables and the fits (``lab sweep``'s own)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from lab.analysis.sweep import analyse_stored
from lab.errors import UnknownRunError
from lab.report.sweep_report import fits_table, levels_table, verdicts
from lab.store import DatabaseGoneError
from lab.tui.messages import SweepsLoaded
from lab.tui.screens.base import LabScreen
from lab.tui.widgets.sweep_chart import SweepChart


def not_in_a_sweep(run_ids: Sequence[int]) -> str:
    """``run 9 is not part of a sweep``, ``runs 9 and 8 are not part of a sweep``,
    ``runs 9, 8 and 7 are not part of a sweep``."""
    names = [str(i) for i in run_ids]
    if not names:
        return "no run or sweep chosen"
    if len(names) == 1:
        return f"run {names[0]} is not part of a sweep"
    return f"runs {', '.join(names[:-1])} and {names[-1]} are not part of a sweep"


class SweepScreen(LabScreen[None]):
    """Sweeps the given runs belong to (or the given sweeps), overlaid.

    Args:
        run_ids: runs whose sweeps to show (any level of each).
        sweep_ids: sweeps to show, besides those of ``run_ids``.
    """

    BINDINGS = [Binding("escape", "back", "Back")]
    HELP = ("the points are the measured throughput per level, the line the fitted "
            "Universal Scalability Law, the vertical line N*, the peak; one colour and one "
            "point marker (● ■ ▲ ◆) per variant.")

    def __init__(self, run_ids: Sequence[int] = (), sweep_ids: Sequence[int] = ()) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.sweep_ids = list(sweep_ids)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="sweep-body"):
            yield SweepChart(id="sweep-chart")
            yield Static("Reading the sweeps…", id="sweep-tables")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "Sweep"
        self.load_sweeps()

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False, name="reading sweeps")
    def load_sweeps(self) -> None:
        """Read and analyse the sweeps (a thread, a fresh read-only connection)."""
        try:
            store = self.lab.reading_store()
        except DatabaseGoneError as exc:
            self.post_message(SweepsLoaded([], str(exc)))
            return
        if store is None:
            self.post_message(SweepsLoaded([], f"{self.lab.db_path}: no runs stored yet"))
            return
        with store:
            ids = list(self.sweep_ids)
            for sweep_id in store.sweep_ids_of(self.run_ids):
                if sweep_id not in ids:
                    ids.append(sweep_id)
            if not ids:
                self.post_message(SweepsLoaded([], not_in_a_sweep(self.run_ids)))
                return
            try:
                sweeps = analyse_stored(store, ids)
            except UnknownRunError as exc:
                self.post_message(SweepsLoaded([], str(exc)))
                return
        self.post_message(SweepsLoaded(sweeps))

    @on(SweepsLoaded)
    def _loaded(self, message: SweepsLoaded) -> None:
        tables = self.query_one("#sweep-tables", Static)
        if message.error:
            tables.update(Text(message.error, style="red"))
            return
        pairs = [(variant, analysis) for _id, variant, analysis in message.sweeps]
        self.sub_title = "Sweep " + ", ".join(f"{sid} ({v})" for sid, v, _a in message.sweeps)
        self.query_one("#sweep-chart", SweepChart).sweeps = tuple(pairs)
        parts: list = [verdicts(pairs), Text("")]
        fits = fits_table(pairs)
        if fits is not None:
            parts += [fits, Text("")]
        parts += [levels_table(f"{v} (sweep {sid})", a) for sid, v, a in message.sweeps]
        tables.update(Group(*parts))

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.dismiss()
