"""The Live screen: runs the chosen variants in turn and shows each run as it goes.

The runs execute in this app's event loop (an async worker), with two listeners on the
engine's events: the store ``StoreRecorder`` and a ``LiveBridge`` that only updates a plain
snapshot. When they have ended, ``lab.session.conclude`` stores their sweep fits and
checks their thresholds, as ``lab run`` does, and the screen shows what it found. The
load itself comes from the engine's generator worker processes, so the UI never competes
with the measurement loop inside one process. A timer redraws from the snapshot at most
four times a second, and only when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, ProgressBar, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from lab.engine import RunOutcome
from lab.errors import LabError
from lab.events import CLOCK_OFFSET_LIMIT_MS, ERROR_CLASSES
from lab.metrics import fmt_int, fmt_percent
from lab.plan import RunPlan
from lab.report.table import fmt_mib, fmt_ms, fmt_rate
from lab.session import PreparedRuns, RunPlanFn, RunReport, RunSequence, check_targets, conclude
from lab.tui.live_model import LiveBridge, LiveSnapshot
from lab.tui.messages import OpenCompare, OpenHistory, OpenSweeps, RunsFinished
from lab.tui.screens.base import LabScreen, controls
from lab.tui.widgets.chart import ChartData, Series, TimeChart

REFRESH_S = 0.25
"""Redraw period: at most four redraws a second, whatever the event rate."""
GENERATOR_WARNING = "results may be limited by the load generator"
REPLICA_ROWS = 6
"""Rows of the replica table before the replicas that have ended are shown as one."""
SHORT_BELOW = 30
"""Terminal rows below which four charts of 4 rows and a full replica table (2 + 6 rows)
do not fit under the header lines."""


def level_step(plan: RunPlan) -> float:
    """How much ``+`` / ``-`` change the load: a quarter of the planned peak, at least 1.

    A fixed fraction makes a few presses matter on any experiment, from 2 VUs to
    2,000 req/s, while staying small enough to watch the effect build up.
    """
    step = max(1.0, plan.load.peak_level / 4)
    return float(math.ceil(step)) if plan.load.model == "closed" else round(step, 1)


def run_title(plan: RunPlan, index: int, count: int, width: int) -> Text:
    """The run's one-line heading: title, experiment / variant (and sweep level), "run k of n".

    A title too long for ``width`` cells ends in "…" so that which experiment and variant
    run stays on the line; with no room at all for it, the title is left out.
    """
    where = Text(f"{plan.experiment} / {plan.run_name}")
    if count > 1:
        # Runs, not variants: a sweep is one variant run at each level, --repeat runs it again.
        where.append(f"  (run {index + 1} of {count})", style="dim")
    title = Text(plan.title, style="bold")
    room = width - where.cell_len - 2
    if width > 0 and title.cell_len > room:
        if room < 8:  # not even a few words of the title: which run it is, alone
            return where
        title.truncate(room, overflow="ellipsis")
    return Text.assemble(title, "  ", where)


def load_source(s: LiveSnapshot) -> str:
    """Where a cluster run's load comes from, for the header; empty for local generators.

    ``load from: 2 generator workers on 1 host (dask) · cluster local:2 · scheduler
    tcp://127.0.0.1:40413`` once the generators are ready (a ``tcp://`` cluster is its own
    scheduler, named once); before, the cluster and that the lab waits for its workers.
    """
    if s.cluster is None:
        return ""
    if not s.load_from:
        waiting = " · waiting for its generator workers…" if s.phase != "finished" else ""
        return f"load from: Dask cluster {s.cluster}{waiting}"
    text = f"load from: {s.load_from} · cluster {s.cluster}"
    if s.scheduler and s.scheduler != s.cluster:
        text += f" · scheduler {s.scheduler}"
    return text


def clock_warning(s: LiveSnapshot) -> str:
    """The generators whose clock is off the Dask scheduler's, as one warning; empty when
    none is (the same rule as ``lab run``'s progress lines)."""
    off = s.clocks_off
    if not off:
        return ""
    advice = "sync the clocks (chrony, ntpd)"
    if len(off) == 1:
        g = off[0]
        return (f"⚠ {g.label}: its clock is {g.clock_offset_ms:+.0f} ms off the Dask scheduler's "
                f"(over {CLOCK_OFFSET_LIMIT_MS:g} ms): its intervals are shifted by as much; {advice}")
    which = "; ".join(f"{g.label} {g.clock_offset_ms:+.0f} ms" for g in off)
    return (f"⚠ clocks over {CLOCK_OFFSET_LIMIT_MS:g} ms off the Dask scheduler's: {which}: their "
            f"intervals are shifted by as much; {advice}")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _unit(model: str) -> str:
    return "VUs" if model == "closed" else "req/s"


class LiveScreen(LabScreen[None]):
    """Runs plans one after the other and shows charts, counters and resources live.

    Args:
        prepared: the runs to execute in turn (``lab.session.prepare``).
        run_plan_fn: the engine's ``run_plan`` when None (tests inject a fake event source).
        exit_when_done: quit the app when the last run has ended (benchmarks).
    """

    BINDINGS = [
        Binding("plus,equals_sign", "more", "More", key_display="+"),
        Binding("minus", "less", "Less", key_display="-"),
        Binding("s", "stop", "Stop"),
        Binding("n", "next", "Next"),
        Binding("c", "compare", "Compare"),
        Binding("h", "history", "History"),
        Binding("escape", "back", "Back"),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (SHORT_BELOW, "-tall")]
    """A terminal too short for four charts and the replica table (80×24) leaves the load
    chart out of a run behind a balancer; the clock line keeps the level."""
    HELP = "Watch a run. + / - change the load by a quarter of the plan; the change is marked on the charts."

    def __init__(self, prepared: PreparedRuns, run_plan_fn: RunPlanFn | None = None,
                 exit_when_done: bool = False) -> None:
        super().__init__()
        self.prepared = prepared
        self.plans = list(prepared.plans)
        self.run_plan_fn = run_plan_fn
        self.exit_when_done = exit_when_done
        self.bridge = LiveBridge(self._fresh_snapshot(0))
        self.runs: RunSequence | None = None
        """The runs going on (once the screen has started them)."""
        self.report: RunReport | None = None
        """What the runs add up to, once they have ended (``lab.session.conclude``)."""
        self.running = False
        """Whether runs are still going (the worker has not ended)."""
        self._stopped_before_start: str | None = None
        self._drawn_version = -1
        self._drawn_points: tuple[int, ...] = ()
        self._run_worker: Worker[None] | None = None
        self._problems_told = 0

    @property
    def run_ids(self) -> list[int]:
        """Stored ids of the runs so far, in order."""
        return self.runs.run_ids if self.runs is not None else []

    @property
    def outcomes(self) -> list[tuple[str, RunOutcome]]:
        """``(name, outcome)`` of every finished run: its variant, with the sweep level for a
        run of a sweep (``default vus=8``)."""
        return [(plan.run_name, outcome) for plan, outcome in self.runs.outcomes] if self.runs else []

    @property
    def snapshot(self) -> LiveSnapshot:
        """The current run's model."""
        return self.bridge.snapshot

    @property
    def plan(self) -> RunPlan:
        """The plan of the current (or last) run."""
        return self.plans[min(self.snapshot.index, len(self.plans) - 1)]

    def compose(self) -> ComposeResult:
        """Header lines, the three charts, and a side panel of counters and resources."""
        yield Header()
        with Vertical(id="live-head"):
            yield Static(id="run-title")
            with Horizontal(id="run-progress"):
                yield ProgressBar(total=max(self.plans[0].load.total_duration_s, 1.0),
                                  show_eta=False, show_percentage=False, id="progress")
                yield Static(id="run-clock")
            yield Static(id="load-source")
            yield Static(id="clock-warning")
            yield Static(id="generator-warning")
        with Horizontal(id="live-body"):
            with Vertical(id="charts"):
                # One time axis for all: only the lowest labels it. The replicas chart
                # and table are shown for runs behind a balancer only.
                yield TimeChart(id="chart-throughput", classes="upper")
                yield TimeChart(id="chart-latency", classes="upper")
                yield TimeChart(id="chart-level")
                yield TimeChart(id="chart-replicas")
                yield Static(id="replica-table")
            with VerticalScroll(id="live-side"):
                yield Static(id="outcomes")
                yield Static(id="counters")
                yield Static(id="resources")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        """Start the runs and the redraw timer."""
        self.sub_title = "Live run"
        for chart in self.query(".upper").results(TimeChart):
            chart.show_x_labels = False
        self.running = True
        self._draw()
        self.set_interval(REFRESH_S, self._tick)
        self._run_worker = self.run_worker(self._run_all(), exclusive=True, group="run",
                                           name="run", exit_on_error=False)

    # ------------------------------------------------------------------ the runs

    async def _run_all(self) -> None:
        """Check the target imports, execute the plans in turn, then conclude them
        (``lab.session``): the only code that talks to the engine."""
        store = self.lab.recording_store()
        try:
            # As `lab run` does, once the database is open and before anything starts;
            # in a thread: an import can take seconds.
            await asyncio.to_thread(check_targets, self.prepared)
        except LabError as exc:
            self.running = False
            if self.exit_when_done:  # nobody is watching: end as `lab run` would
                self.app.exit(return_code=exc.exit_code, message=str(exc))
                return
            self.notify(str(exc), severity="error", timeout=15)
            self.dismiss()  # nothing ran: back to the experiments
            return
        runs = self.runs = RunSequence(self.prepared, store, [self.bridge], self.run_plan_fn)
        if self._stopped_before_start is not None:
            runs.stop(self._stopped_before_start)
        try:
            await runs.run(on_start=self._run_starts, on_end=self._run_ended)
            self._tell_problems(runs)  # runs kept elsewhere when the file went after the last
            if not runs.problems:
                self._conclude(runs)
        finally:
            self.running = False
        self.post_message(RunsFinished(runs.run_ids))

    def _fresh_snapshot(self, index: int) -> LiveSnapshot:
        # The cluster is known from the plan: the header names it while the run prepares.
        return LiveSnapshot(index=index, count=len(self.plans), cluster=self.plans[index].load.cluster)

    def _run_starts(self, index: int, plan: RunPlan) -> None:
        self.bridge.snapshot = self._fresh_snapshot(index)

    def _run_ended(self, plan: RunPlan, outcome: RunOutcome) -> None:
        self.bridge.snapshot.version += 1
        if self.runs is not None:
            self._tell_problems(self.runs)

    def _tell_problems(self, runs: RunSequence) -> None:
        """Notify each run the database did not take in full (it stopped taking writes, or
        its file was deleted) that was not told yet: one line each, where it is kept."""
        new = runs.problems[self._problems_told:]
        self._problems_told = len(runs.problems)
        for problem in new:
            self.notify(problem.describe().removeprefix("lab: "), severity="error", timeout=60)

    def _conclude(self, runs: RunSequence) -> None:
        """Store the sweep fits and check the thresholds of the runs made, as ``lab run``
        does; say what it found."""
        if not runs.run_ids:
            return
        try:
            report = self.report = conclude(self.lab.recording_store(), self.prepared, runs.run_ids,
                                            stopped=runs.halted)
        except LabError as exc:
            self.notify(str(exc), severity="error", timeout=30)
            return
        for line in report.warnings:
            self.notify(line.removeprefix("lab: "), severity="warning", timeout=30)
        if report.failed_thresholds:
            self.notify(report.thresholds_line(), severity="error", timeout=30)

    def active_run_ids(self) -> set[int]:
        """Stored ids of this screen's runs while they go on (empty once they ended)."""
        if not self.running or self.runs is None or self.runs.current_run_id is None:
            return set()
        return {*self.run_ids, self.runs.current_run_id}

    def _stop(self, reason: str) -> None:
        if self.runs is not None:
            self.runs.stop(reason)
        else:
            self._stopped_before_start = reason

    async def stop_and_wait(self, reason: str = "stopped by user") -> None:
        """Stop the current run (stored as aborted), start no other, and wait for the
        engine to end every child process."""
        self._stop(reason)
        if self._run_worker is not None:
            # A failed worker was reported already (LabScreen); quitting goes on.
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await self._run_worker.wait()

    @on(Worker.StateChanged)
    def _run_worker_ended(self, event: Worker.StateChanged) -> None:
        if event.worker is self._run_worker and event.state in (WorkerState.CANCELLED, WorkerState.ERROR):
            self.running = False
            self.refresh_bindings()

    @on(RunsFinished)
    def _runs_finished(self, message: RunsFinished) -> None:
        self._drawn_version = -1
        self._draw()
        self.refresh_bindings()
        if self.exit_when_done:
            self.app.exit()

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show the keys that make sense now: load keys while running, compare after."""
        if action in ("more", "less", "stop", "next"):
            return self.running
        if action in ("compare", "back"):
            return not self.running
        return True

    def _change_level(self, sign: int) -> None:
        s = self.snapshot
        if s.phase != "running":
            self.notify("The load has not started yet.", severity="warning")
            return
        plan = self.plan
        step = level_step(plan)
        floor = 1.0 if plan.load.model == "closed" else step
        new = max(floor, s.level + sign * step)
        if new == s.level:
            self.notify(f"Already at the lowest level ({new:g} {_unit(s.model)}).")
            return
        if self.runs is not None:
            self.runs.control.set_level(new)

    @controls("change the load")
    def action_more(self) -> None:
        """Raise VUs (closed model) or the arrival rate (open model) by one step."""
        self._change_level(+1)

    @controls("change the load")
    def action_less(self) -> None:
        """Lower VUs or the arrival rate by one step."""
        self._change_level(-1)

    @controls("stop runs")
    def action_stop(self) -> None:
        """Stop the run now (stored as aborted, data kept) and run no other variant."""
        self._stop("stopped by user")

    @controls("stop runs")
    def action_next(self) -> None:
        """End this variant's run now (stored as aborted) and start the next one."""
        last = self.snapshot.index >= len(self.plans) - 1
        if self.runs is not None:
            self.runs.skip("skipped to the next variant by user" if not last else "stopped by user")

    def action_compare(self) -> None:
        """Compare the runs just made (a sweep's runs: show the sweep curves)."""
        if self.run_ids:
            if any(plan.sweep is not None for plan in self.plans):
                self.post_message(OpenSweeps(self.run_ids))
            else:
                self.post_message(OpenCompare(self.run_ids))

    def action_history(self) -> None:
        """Open the stored runs (the run goes on meanwhile)."""
        self.post_message(OpenHistory())

    def action_back(self) -> None:
        """Back to the experiments once the runs have ended."""
        if self.running:
            self.notify("A run is going on: press s to stop it first.", severity="warning")
            return
        self.dismiss()

    # ------------------------------------------------------------------ drawing

    def on_resize(self) -> None:
        """Draw again at the new size (the title line is fitted to the width)."""
        self._drawn_version = -1

    def _tick(self) -> None:
        # Coalescing: many events between two ticks cost one redraw.
        if self.snapshot.version != self._drawn_version and not self.lab.terminal_gone:
            self._draw()

    def _draw(self) -> None:
        s = self.snapshot
        self._drawn_version = s.version
        plan = self.plan
        self._draw_head(s, plan)
        self._show_fleet(s)
        points = (len(s.t), len(s.markers), len(s.replica_t), len(s.scale_marks))
        if points != self._drawn_points:
            # Charts are the costly part; resource samples alone do not move them.
            self._drawn_points = points
            self._draw_charts(s, plan)
        if s.balancer is not None:
            self.query_one("#replica-table", Static).update(self._replica_table(s))
        self.query_one("#counters", Static).update(self._counters(s))
        self.query_one("#resources", Static).update(self._resources(s))
        outcomes = self.query_one("#outcomes", Static)
        outcomes.display = bool(self.outcomes or self.prepared.skipped)
        outcomes.update(self._outcomes())

    def _draw_head(self, s: LiveSnapshot, plan: RunPlan) -> None:
        head = self.query_one("#run-title", Static)
        head.update(run_title(plan, s.index, len(self.plans), head.content_size.width), layout=False)
        total = plan.load.total_duration_s
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=max(total, 1.0), progress=min(s.elapsed_s, total))
        phase = {"waiting": "waiting", "starting": "starting the target…", "running": "running",
                 "finished": s.status or "finished"}[s.phase]
        stage = f"stage {s.stage + 1}/{s.stages}" if s.stages else "steady"
        clock = f"{s.elapsed_s:4.0f}/{total:g} s  {stage}  {s.level:g} {_unit(plan.load.model)}  {phase}"
        self.query_one("#run-clock", Static).update(clock, layout=False)
        self.set_class(s.cluster is not None, "-cluster")
        if s.cluster is not None:
            self.query_one("#load-source", Static).update(load_source(s))
        clocks = self.query_one("#clock-warning", Static)
        clocks.display = bool(s.clocks_off)
        if s.clocks_off:
            clocks.update(clock_warning(s))
        warning = self.query_one("#generator-warning", Static)
        if s.generator_bound:
            warning.update(f"⚠ {s.generator_bound_headline}: {GENERATOR_WARNING}")
            warning.display = True
        elif s.summary is not None and s.summary.load_not_achieved:
            warning.update(f"⚠ offered load not achieved: {s.summary.load_not_achieved_reason}")
            warning.display = True
        else:
            warning.display = False

    def _draw_charts(self, s: LiveSnapshot, plan: RunPlan) -> None:
        # One x range for every chart, so their time axes line up: the last replica count
        # is taken after the last interval's end, as the run ends.
        total = max([plan.load.total_duration_s, *s.t[-1:], *s.replica_t[-1:]])
        # User changes in the warning colour, stage changes (after the first) muted; on the
        # replicas chart, scale events in the foreground colour (accent is warning-orange in
        # the default theme).
        markers = tuple((m.t_s, "warning" if m.reason == "user" else "secondary")
                        for m in s.markers if m.reason == "user" or m.t_s > 0)
        # Copies: the snapshot's lists keep growing, a chart's data must not.
        t = tuple(s.t)
        self.query_one("#chart-throughput", TimeChart).data = ChartData(
            "throughput req/s",
            (Series("ok", t, tuple(s.ok_rps), "success"), Series("errors", t, tuple(s.err_rps), "error")),
            markers, total)
        self.query_one("#chart-latency", TimeChart).data = ChartData(
            "latency ms",
            (Series("p50", t, tuple(s.p50), "success"), Series("p95", t, tuple(s.p95), "warning"),
             Series("p99", t, tuple(s.p99), "error")),
            markers, total)
        label = "active VUs" if plan.load.model == "closed" else "arrival rate req/s"
        self.query_one("#chart-level", TimeChart).data = ChartData(
            label, (Series(label, t, tuple(s.levels), "primary"),), markers, total)
        if s.balancer is not None:
            rt = tuple(s.replica_t)
            scale = tuple((m.t_s, "foreground") for m in s.scale_marks)
            self.query_one("#chart-replicas", TimeChart).data = ChartData(
                "replicas",
                # Ready drawn last, on top: with a fixed fleet the two lines are one.
                (Series(f"desired {s.desired[-1]:g}" if s.desired else "desired", rt, tuple(s.desired),
                        "primary"),
                 Series(f"ready {s.ready[-1]:g}" if s.ready else "ready", rt, tuple(s.ready), "success")),
                markers + scale, total, whole_numbers=True,
                marker_legend=(("scale", "foreground"),) if s.autoscaled else ())

    def _show_fleet(self, s: LiveSnapshot) -> None:
        """Show the replicas chart and table for a run behind a balancer (each variant of
        an experiment may differ; lab.tcss shows them), the lowest chart labelling the
        time axis."""
        balanced = s.balancer is not None
        if self.has_class("-balanced") == balanced:
            return
        self.set_class(balanced, "-balanced")
        self.query_one("#chart-level", TimeChart).show_x_labels = not balanced

    @staticmethod
    def _grid() -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        return grid

    def _counters(self, s: LiveSnapshot) -> Group:
        grid = self._grid()
        grid.add_row("requests", f"{s.requests:,}")
        grid.add_row("ok", f"{s.ok:,}")
        grid.add_row("errors", Text(f"{s.errors:,}", style="bold red" if s.errors else ""))
        for cls in ERROR_CLASSES:
            if s.errors_by_class.get(cls):
                grid.add_row(f"  {cls}", f"{s.errors_by_class[cls]:,}")
        grid.add_row("dropped", f"{s.dropped:,}")
        if s.interrupted:
            grid.add_row("interrupted", f"{s.interrupted:,}")
        if s.ok_rps:
            grid.add_row("req/s now", fmt_rate(s.ok_rps[-1]))
            grid.add_row("p95 now", f"{fmt_ms(s.p95[-1])} ms")
        return Group(Text("Counters", style="bold"), grid)

    def _resources(self, s: LiveSnapshot) -> Group:
        grid = self._grid()
        procs = f" ×{s.target_processes}" if s.target_processes > 1 else ""
        grid.add_row(f"target CPU{procs}", _pct(s.target_cpu))
        grid.add_row("target RSS", "–" if s.target_rss is None else f"{fmt_mib(s.target_rss)} MiB")
        gen = Text(_pct(s.generator_cpu_total))
        if s.generator_bound:
            gen.stylize("bold red")
        # Only generators on this machine are sampled (a remote Dask worker's are not).
        workers = len(s.generator_cpu) or len(s.generators) or self.plan.load.workers
        grid.add_row("generator CPU" + (f" ×{workers}" if workers > 1 else ""), gen)
        system = _pct(s.system_cpu)
        if s.cores and s.system_cpu is not None:
            system = f"{s.system_cpu:.0f}/{s.cores * 100}%"
        grid.add_row("system CPU", system)
        grid.add_row("lab UI CPU", _pct(s.lab_cpu))
        for name, cpu in s.service_cpu.items():
            grid.add_row(f"{name} CPU", _pct(cpu))
        if s.balancer is not None:
            grid.add_row("nginx CPU", _pct(s.balancer_cpu))
        title = Text.assemble(("Resources", "bold"), (" (CPU: % of a core)", "dim"))
        if not s.gauges:
            return Group(title, grid)
        gauges = self._grid()
        for name, value in s.gauges.items():
            gauges.add_row(name.replace("_", " "), f"{value:,.1f}" if value % 1 else f"{value:,.0f}")
        return Group(title, grid, Text(""), Text("Target reports", style="bold"), gauges)

    @staticmethod
    def _replica_table(s: LiveSnapshot) -> Group:
        """Per replica: state, share of the requests so far, requests, p50/p99 as nginx
        measured them (merged histograms), CPU now; from nginx's log, so a second or two
        behind the counters."""
        # One line at 80 columns: a wrapped title would take a chart's row.
        title = Text.assemble(("Replicas", "bold"), f" (nginx {s.balancer})", (" · share %, ms", "dim"),
                              no_wrap=True, overflow="ellipsis")
        # One space between columns: the table fits the charts' 48 columns at 80×24.
        table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False, show_edge=False,
                      expand=False, header_style="bold")
        for name in ("#", "state", "share", "req", "p50", "p99", "CPU"):
            table.add_column(name, justify="left" if name == "state" else "right", no_wrap=True)
        for row in s.replica_views(REPLICA_ROWS):
            style = "" if row.state in ("starting", "ready", "draining") else "dim"
            table.add_row(row.label, Text(row.state, style="red" if row.state in ("killed", "failed")
                                          else style),
                          fmt_percent(row.share, 1), fmt_int(row.requests), fmt_ms(row.p50_ms),
                          fmt_ms(row.p99_ms), _pct(row.cpu_percent), style=style)
        parts: list[Text | Table] = [title, table]
        if s.unrouted:
            parts.append(Text(f"{s.unrouted:,} arrived with no replica ready", style="yellow"))
        return Group(*parts)

    def _outcomes(self) -> Group | Text:
        lines: list[Text] = []
        for skip in self.prepared.skipped:
            lines.append(Text.assemble((skip.variant, "bold"), " ", ("skipped", "yellow")))
            lines.append(Text(f"  {skip.reason}", style="italic"))
        if not self.outcomes:
            return Group(*lines, Text("")) if lines else Text("")
        lines.append(Text("Finished runs", style="bold"))
        for variant, outcome in self.outcomes:
            style = {"completed": "green", "failed": "red", "aborted": "yellow"}.get(outcome.status, "")
            lines.append(Text.assemble((variant, "bold"), " ", (outcome.status, style)))
            if outcome.summary is not None:
                lines.append(Text(f"  {fmt_rate(outcome.summary.throughput_rps)} req/s · "
                                  f"p95 {fmt_ms(outcome.summary.latency_ms.p95)} ms"))
            if outcome.reason:
                lines.append(Text(f"  {outcome.reason}", style="italic"))
        for _sweep_id, variant, analysis in self.report.sweeps if self.report is not None else ():
            fit = analysis.usl
            lines.append(Text(f"sweep {variant}: " + (
                f"USL fit stored (σ {fit.sigma:.3g}, κ {fit.kappa:.3g}, R² {fit.r2:.3f}); c shows it"
                if fit is not None else (analysis.fit_note or "no fit"))))
        if self.report is not None and self.report.thresholds:
            failed = self.report.failed_thresholds
            met = len(self.report.thresholds) - len(failed)
            lines.append(Text(f"thresholds: {met} of {len(self.report.thresholds)} met",
                              style="red" if failed else "green"))
            lines += [Text(f"  {r.variant}: {r.describe()}", style="red") for r in failed[:5]]
        lines.append(Text(""))
        return Group(*lines)
