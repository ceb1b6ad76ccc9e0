"""The Compare screen: stored runs side by side, their series overlaid, their costs.

The table is ``lab compare``'s own (``lab.report.table.comparison_table``), so the TUI
and the command line can never disagree on a figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static

from lab.errors import UnknownRunError
from lab.report.fleet import decisions_table, replicas_table
from lab.report.table import comparison_table, fmt_cpu, fmt_mib
from lab.session import FleetReport, fleets_of
from lab.store import DatabaseGoneError, IntervalRow, RunRecord
from lab.tui.messages import ComparisonLoaded
from lab.tui.screens.base import LabScreen
from lab.tui.widgets.chart import PALETTE, ChartData, Series, TimeChart

BAR_WIDTH = 16
"""Characters of the longest bar in the resource comparison."""


def _bar(value: float | None, top: float) -> str:
    if value is None or top <= 0:
        return ""
    return "█" * max(1, round(value / top * BAR_WIDTH))


def resource_table(runs: Sequence[RunRecord]) -> Table:
    """Target CPU-seconds per 1,000 requests and peak RSS of each run, with bars.

    Lower is better for both: a cache that doubles throughput usually shows here as a
    much shorter CPU bar, and sometimes as a longer memory one.
    """
    cpu = [r.summary.target_cpu_s_per_1k if r.summary else None for r in runs]
    rss = [r.summary.target_peak_rss_bytes if r.summary else None for r in runs]
    cpu_top = max((v for v in cpu if v is not None), default=0.0)
    rss_top = float(max((v for v in rss if v is not None), default=0))
    table = Table(title="Resources (lower is better)", title_style="bold", box=None, padding=(0, 1),
                  show_edge=False)
    table.add_column("run", justify="right")
    table.add_column("variant")
    table.add_column("CPU s/1k", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column("RSS MiB", justify="right")
    table.add_column("", no_wrap=True)
    for run, c, m in zip(runs, cpu, rss, strict=True):
        table.add_row(str(run.id), run.variant, fmt_cpu(c), _bar(c, cpu_top),
                      fmt_mib(m), _bar(m, rss_top))
    return table


def run_label(run: RunRecord) -> str:
    """How a run is named in legends: ``#3 lru``."""
    return f"#{run.id} {run.variant}"


class CompareScreen(LabScreen[None]):
    """Runs side by side with deltas against a baseline of the user's choice.

    Args:
        run_ids: the runs, in the order picked; the first is the baseline at first.
    """

    BINDINGS = [
        Binding("b", "baseline", "Baseline"),
        Binding("escape", "back", "Back"),
    ]
    HELP = "b makes the next run the baseline the others are measured against."

    def __init__(self, run_ids: Sequence[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.runs: list[RunRecord] = []
        self.intervals: dict[int, list[IntervalRow]] = {}
        self.fleets: dict[int, FleetReport] = {}
        """Replicas and autoscaler decisions of the runs behind a balancer, by run id."""
        self.baseline = 0
        """Index in ``runs`` of the baseline."""

    def compose(self) -> ComposeResult:
        """The table, two overlaid charts, the resource comparison and, for runs behind a
        balancer, their replicas and autoscaler decisions, scrolling as one."""
        yield Header()
        with VerticalScroll(id="compare-body"):
            yield Static("Reading the runs…", id="compare-table")
            with Horizontal(id="compare-charts"):
                yield TimeChart(id="compare-throughput")
                yield TimeChart(id="compare-p95")
            yield Static(id="compare-resources")
            yield Static(id="compare-replicas")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        """Read the runs in a thread."""
        self.sub_title = "Compare runs " + ", ".join(str(i) for i in self.run_ids)
        self.load_runs()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False, name="reading runs")
    def load_runs(self) -> None:
        """Read the runs and their intervals (a thread, a fresh read-only connection)."""
        try:
            store = self.lab.reading_store()
        except DatabaseGoneError as exc:
            self.post_message(ComparisonLoaded([], {}, str(exc)))
            return
        if store is None:
            self.post_message(ComparisonLoaded([], {}, f"{self.lab.db_path}: no runs stored yet"))
            return
        with store:
            try:
                runs = store.get_runs(self.run_ids)
            except UnknownRunError as exc:
                self.post_message(ComparisonLoaded([], {}, str(exc)))
                return
            intervals = {run.id: store.intervals(run.id) for run in runs}
            fleets = fleets_of(store, runs)
        self.post_message(ComparisonLoaded(runs, intervals, fleets=fleets))

    @on(ComparisonLoaded)
    def _loaded(self, message: ComparisonLoaded) -> None:
        if message.error:
            self.query_one("#compare-table", Static).update(Text(message.error, style="red"))
            return
        self.runs, self.intervals, self.fleets = message.runs, message.intervals, message.fleets
        self._draw()

    def _draw(self) -> None:
        if not self.runs:
            return
        self.query_one("#compare-table", Static).update(comparison_table(self.runs, self.baseline))
        throughput: list[Series] = []
        p95: list[Series] = []
        for i, run in enumerate(self.runs):
            rows = self.intervals.get(run.id, [])
            x = [iv.t_s + iv.duration_s for iv in rows]
            color = PALETTE[i % len(PALETTE)]
            throughput.append(Series(run_label(run), x,
                                     [iv.ok / iv.duration_s if iv.duration_s > 0 else None for iv in rows],
                                     color))
            p95.append(Series(run_label(run), x, [iv.p95_ms for iv in rows], color))
        self.query_one("#compare-throughput", TimeChart).data = ChartData("req/s",
                                                                           tuple(throughput))
        self.query_one("#compare-p95", TimeChart).data = ChartData("p95 ms", tuple(p95))
        self.query_one("#compare-resources", Static).update(resource_table(self.runs))
        replicas = self.query_one("#compare-replicas", Static)
        replicas.display = any(run.id in self.fleets for run in self.runs)
        replicas.update(self._fleet_tables())

    def _fleet_tables(self) -> Group:
        """``lab show``'s replica and autoscaler tables of each run behind a balancer."""
        parts: list[RenderableType] = []
        for run in self.runs:
            fleet = self.fleets.get(run.id)
            if fleet is None:
                continue
            parts.append(replicas_table(run, fleet))
            if fleet.decisions:
                parts += [Text(""), decisions_table(run, fleet.decisions)]
            parts.append(Text(""))
        return Group(*parts)

    def action_baseline(self) -> None:
        """Make the next run the baseline."""
        if len(self.runs) > 1:
            self.baseline = (self.baseline + 1) % len(self.runs)
            self._draw()
            base = self.runs[self.baseline]
            self.notify(f"Baseline: run {base.id} ({base.variant})")

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.dismiss()
