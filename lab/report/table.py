"""Terminal tables (rich) of stored runs: the side-by-side comparison, the run list, one
run's per-interval series and one run's details.

Input is ``lab.store`` dataclasses; nothing here touches the database. Every figure reads
fine without colour: colour only repeats what the sign of a change already says (green
better, red worse). Missing values show as ``–``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lab.analysis.summary import nothing_served
from lab.events import ERROR_CLASSES
from lab.metrics import (
    CACHE_HIT,
    COMPARISON_COLUMNS,
    MISSING,
    NOISE_FIGURES,
    DeltaKind,
    Metric,
    fmt_cpu,
    fmt_int,
    fmt_mib,
    fmt_ms,
    fmt_percent,
    fmt_rate,
    fmt_seconds,
)

if TYPE_CHECKING:
    from lab.analysis.noise import Change, Spread
    from lab.analysis.stages import StageFigures
    from lab.analysis.thresholds import ThresholdResult
    from lab.figures import Summary
    from lab.store import ErrorRow, IntervalRow, ReplicaCountRow, RunRecord

MINUS = "−"
"""Typographic minus sign used in deltas."""
STATUS_STYLE = {"completed": "green", "failed": "red", "aborted": "yellow", "running": "cyan"}

# --------------------------------------------------------------------------- formatting


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (a target's coloured stderr, a plot),
    decoded by rich rather than by a pattern of our own."""
    return Text.from_ansi(text).plain


def _signed(number: float, text: str) -> str:
    """``text`` (an absolute value already formatted) with ``+`` or a minus sign."""
    return ("+" if number > 0 else MINUS) + text


def format_delta(value: float, base: float, kind: DeltaKind) -> tuple[str, float] | None:
    """The change from ``base`` to ``value`` as text, with its sign.

    Args:
        value: the figure of the compared run.
        base: the baseline's figure.
        kind: ``relative`` (percent change, e.g. ``+412%``; none when the base is 0),
            ``points`` (difference of two percents, e.g. ``+1.2 pp``) or ``absolute``
            (difference of counts, e.g. ``+120``).

    Returns:
        ``(text, signed_change)``, signed_change being 0.0 when the shown change rounds
        to nothing; None when no change can be computed.
    """
    if kind == "relative":
        if base == 0:
            return None
        pct = (value - base) / abs(base) * 100
        shown = f"{abs(pct):.0f}" if abs(pct) >= 10 else f"{abs(pct):.1f}"
        if float(shown) == 0:
            return "±0%", 0.0
        return _signed(pct, shown + "%"), pct
    diff = value - base
    if kind == "points":
        shown = f"{abs(diff):.1f}"
        if float(shown) == 0:
            return "±0pp", 0.0
        return _signed(diff, shown + "pp"), diff
    if round(diff) == 0:
        return "±0", 0.0
    return _signed(diff, f"{abs(round(diff)):,}"), diff


def _pct(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _lat(summary: Summary, key: str) -> float | None:
    """A latency figure, or None when no request succeeded (0 ms would look fastest)."""
    return getattr(summary.latency_ms, key) if summary.latency_ms.count else None


def _cell(metric: Metric, summary: Summary | None, base: Summary | None) -> Text:
    value = metric.shown(summary) if summary is not None else None
    text = Text(metric.format(value))
    if value is None or base is None or summary is base:
        return text
    base_value = metric.shown(base)
    if base_value is None:
        return text
    delta = format_delta(float(value), float(base_value), metric.delta)
    if delta is None:
        return text
    label, change = delta
    if change == 0:
        style = "dim"
    else:
        style = "green" if (change > 0) == metric.higher_is_better else "red"
    text.append(f"\n{label}", style=style)
    return text


def _compact_table(title: str, caption: str | None = None) -> Table:
    """A table that spends few columns on borders: a rule under the header, one space
    between columns, none at the edges (so wide tables fit 80 columns)."""
    return Table(
        title=title,
        caption=caption,
        title_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        show_edge=False,
    )


def _status(run: RunRecord) -> Text:
    text = Text(run.status, style=STATUS_STYLE.get(run.status, ""))
    if run.summary is not None and run.summary.generator_bound:
        text.append("\ngen-bound", style="yellow")
    if run.summary is not None and run.summary.load_not_achieved:
        text.append("\nbelow offered", style="yellow")
    return text


def _engine_notes(runs: Sequence[RunRecord]) -> list[str]:
    """Which client engine and how many generator workers drove the runs."""
    from lab.report.json_report import load_source_of

    kinds = {load_source_of(run) for run in runs}
    if len(kinds) == 1:
        return [f"load from: {kinds.pop()}"]
    return [f"run {run.id} load from: {load_source_of(run)}" for run in runs]


def _experiments(runs: Sequence[RunRecord]) -> str:
    names = list(dict.fromkeys(run.experiment for run in runs))
    return ", ".join(names) if names else "no runs"


# --------------------------------------------------------------------------- tables


def comparison_table(runs: Sequence[RunRecord], baseline: int = 0) -> Table:
    """The side-by-side comparison: one row per run, each figure with its change against
    the baseline run.

    Columns: run id, variant, status, goodput (req/s), p50/p95/p99/max latency (ms), error
    percent, dropped requests, target CPU-seconds per 1,000 requests, target peak RSS
    (MiB) and, when any run reports one, the cache hit percent. Each figure's change
    stands on a second line of its cell, under the figure (so the table fits 80 columns;
    the caption says so): relative (``+412%``, ``−78%``) for rates, latencies, CPU and
    memory, in percentage points (``+1.2pp``) for error and cache-hit percents, and
    absolute (``+120``) for dropped requests; none when the baseline's figure is 0 or
    missing. The baseline row shows none and is bold; runs without a summary show ``–``.
    The caption explains the second line (only when one is shown), and names runs whose
    every request failed and runs that were not completed or not measured, with why.

    Args:
        runs: runs in display order.
        baseline: index in ``runs`` of the run the others are compared with.

    Raises:
        IndexError: ``baseline`` is outside ``runs`` (when ``runs`` is not empty).
    """
    if runs and not -len(runs) <= baseline < len(runs):
        raise IndexError(f"baseline {baseline} is outside the {len(runs)} runs")
    base_run = runs[baseline] if runs else None
    base = base_run.summary if base_run is not None else None
    metrics = list(COMPARISON_COLUMNS)
    if any(run.summary is not None and run.summary.cache_hit_ratio is not None for run in runs):
        metrics.append(CACHE_HIT)

    rows = [[_cell(metric, run.summary, base) for metric in metrics] for run in runs]
    notes = []
    if any("\n" in cell.plain for row in rows for cell in row):
        # Only when a change line is shown: runs without figures (failed early) have none.
        notes.append(f"second line: change vs run {base_run.id} ({base_run.variant})")
    notes.extend(_engine_notes(runs))
    for run in runs:
        if run.summary is not None and run.summary.generator_bound:
            notes.append(f"run {run.id} gen-bound: the load generator limited it "
                         f"({run.summary.generator_bound_reason}); its figures describe the "
                         f"generator, not the target")
        if run.summary is not None and run.summary.load_not_achieved:
            notes.append(f"run {run.id} below offered load: {run.summary.load_not_achieved_reason}")
        if run.summary is not None and (failed := nothing_served(run.summary)):
            notes.append(f"run {run.id} {run.status}, but {failed}")
        if run.reason and (run.status != "completed" or run.summary is None):
            # A target's stderr may carry colour codes; shown raw they garble the table.
            clean = strip_ansi(run.reason)
            reason = clean if len(clean) <= 160 else clean[:157] + "..."
            notes.append(f"run {run.id} {run.status}: {reason}")
    caption = "\n".join(notes) or None
    table = _compact_table(_experiments(runs), caption=caption)
    table.add_column("id", justify="right")
    variant_width = min(12, max((len(run.variant) for run in runs), default=7))
    table.add_column("variant", overflow="fold", min_width=variant_width)
    table.add_column("status", min_width=max((len(run.status) for run in runs), default=6))
    for metric in metrics:
        table.add_column(metric.header.replace(" ", "\n"), justify="right")
    for run, cells in zip(runs, rows, strict=True):
        table.add_row(
            str(run.id),
            run.variant,
            _status(run),
            *cells,
            style="bold" if run is base_run and len(runs) > 1 else None,
        )
    return table


def sweep_label(run: RunRecord) -> str:
    """Which sweep level a run is, e.g. ``3 · vus=8`` (sweep 3, level vus = 8); "" for a run
    outside any sweep. A dotted parameter shows its last part (``env.USL_SERIAL_MS`` →
    ``USL_SERIAL_MS``), so the cell stays narrow."""
    if run.sweep_id is None:
        return ""
    sweep = run.settings.sweep
    parameter = sweep.parameter if sweep is not None else ""
    level = "" if run.sweep_level is None else f"{run.sweep_level:g}"
    name = parameter.rsplit(".", 1)[-1] or "level"
    return f"{run.sweep_id} · {name}={level}" if level else str(run.sweep_id)


def runs_table(runs: Sequence[RunRecord]) -> Table:
    """The stored runs, one row each (for ``lab runs``): id, experiment, variant, the sweep
    and level (only when a listed run is a sweep level), status, start (UTC), duration (s),
    goodput (req/s), p95 latency (ms) and error count."""
    sweeps = any(run.sweep_id is not None for run in runs)
    table = _compact_table("runs")
    table.add_column("id", justify="right")
    table.add_column("experiment", overflow="fold")
    table.add_column("variant", overflow="fold")
    if sweeps:
        table.add_column("sweep", overflow="fold")
    table.add_column("status")
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("dur s", justify="right")
    table.add_column("req/s", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_column("errors", justify="right")
    for run in runs:
        s = run.summary
        table.add_row(
            str(run.id),
            run.experiment,
            run.variant,
            *([sweep_label(run) or MISSING] if sweeps else []),
            _status(run),
            run.started_at[:16].replace("T", " "),
            fmt_seconds(run.duration_s),
            fmt_rate(s.throughput_rps) if s else MISSING,
            fmt_ms(_lat(s, "p95")) if s else MISSING,
            fmt_int(s.errors) if s else MISSING,
        )
    return table


def gauges_by_interval(intervals: Sequence[IntervalRow],
                       samples: Sequence[tuple[float, str, float]]) -> list[dict[str, float]]:
    """For each interval, the last reading of each target gauge taken inside it.

    Args:
        intervals: the run's intervals, time order.
        samples: ``(t_s, name, value)`` readings of the target's gauges, time order.
    """
    out: list[dict[str, float]] = [{} for _ in intervals]
    i = 0
    for t_s, name, value in samples:
        while i < len(intervals) and t_s > intervals[i].t_s + intervals[i].duration_s + 1e-6:
            i += 1
        if i == len(intervals):
            break
        out[i][name] = value
    return out


def series_table(run: RunRecord, intervals: Sequence[IntervalRow],
                 samples: Sequence[tuple[float, str, float]] = (),
                 replica_counts: Sequence[ReplicaCountRow] = ()) -> Table:
    """One row per interval of a run (for ``lab show``).

    Columns: start (s after the load began), completed requests, ok, errors, goodput
    (req/s), p50/p95/p99/max latency of successful requests (ms), dropped requests, the
    load level: active VUs (closed model) or scheduled arrival rate in req/s (open
    model, when any interval has a rate), the replicas ready / desired at the interval's
    end (runs behind a balancer), and one column per target gauge (its last reading in
    the interval), when the target reported any.
    """
    counts = {round(c.t_s, 3): c for c in replica_counts}
    open_model = any(iv.target_rate > 0 for iv in intervals)
    gauges = gauges_by_interval(intervals, samples)
    names = list(dict.fromkeys(name for _t, name, _v in samples))
    table = _compact_table(f"run {run.id} · {run.experiment} / {run.variant}")
    for header in ("t s", "req", "ok", "err", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(header, justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("rate" if open_model else "VUs", justify="right")
    if counts:
        table.add_column("replicas\nready/want", justify="right")
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    for iv, ivg in zip(intervals, gauges, strict=True):
        count = counts.get(round(iv.t_s + iv.duration_s, 3))
        replica_cell = ([f"{count.ready}/{count.desired}" if count else MISSING] if counts else [])
        table.add_row(
            f"{iv.t_s:g}",
            fmt_int(iv.requests),
            fmt_int(iv.ok),
            Text(fmt_int(iv.errors), style="red" if iv.errors else ""),
            fmt_rate(iv.ok / iv.duration_s) if iv.duration_s > 0 else MISSING,
            fmt_ms(iv.p50_ms),
            fmt_ms(iv.p95_ms),
            fmt_ms(iv.p99_ms),
            fmt_ms(iv.max_ms),
            fmt_int(iv.dropped),
            fmt_rate(iv.target_rate) if open_model else fmt_int(iv.active_vus),
            *replica_cell,
            *(MISSING if name not in ivg else _fmt_figure(ivg[name]) for name in names),
        )
    return table


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    return grid


def _host_text(host: dict[str, Any]) -> str:
    parts = []
    if host.get("cores"):
        parts.append(f"{host['cores']} cores")
    if host.get("memory_bytes"):
        parts.append(f"{host['memory_bytes'] / 1024**3:.1f} GiB")
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if host.get("platform"):
        parts.append(str(host["platform"]))
    return ", ".join(parts) or MISSING


def run_details(run: RunRecord, errors: Sequence[ErrorRow] = ()) -> RenderableType:
    """A run's facts and headline figures (for ``lab show``).

    Shows the header facts (experiment, variant, status and reason, times, target, host,
    lab version), the summary figures (counts, goodput and attempts in req/s, error
    rate, CPU-seconds per 1,000 requests, peak RSS in MiB, cache hit percent), latency
    in ms of successful requests, of every attempt and service time, and errors by class.

    Args:
        run: the run.
        errors: the run's stored error samples (``Store.errors``), shown with a sample
            message each; optional.
    """
    facts = _grid()
    facts.add_row("run", f"{run.id}  {run.experiment} / {run.variant}")
    if run.title:
        facts.add_row("title", run.title)
    status = _status(run)
    if run.reason:
        status.append(f"  {run.reason}", style="")
    facts.add_row("status", status)
    facts.add_row("started", run.started_at)
    facts.add_row("ended", run.ended_at or MISSING)
    facts.add_row("duration s", fmt_seconds(run.duration_s))
    facts.add_row("target", run.target_url or MISSING)
    facts.add_row("host", _host_text(run.host))
    facts.add_row("lab", run.lab_version or MISSING)
    from lab.report.json_report import load_source_of

    facts.add_row("load from", load_source_of(run))
    gens = run.settings.generators
    if gens is not None and gens.source == "dask":
        facts.add_row("cluster", f"{gens.cluster} (scheduler {gens.scheduler}; hosts: "
                                 f"{', '.join(gens.hosts)})")
    parts: list[RenderableType] = [facts, Text("")]

    s = run.summary
    if s is None:
        parts.append(Text("nothing measured", style="italic"))
    else:
        figures = _grid()
        figures.add_row("window s", fmt_seconds(s.window_s))
        figures.add_row(
            "requests",
            f"{s.requests:,} (ok {s.ok:,}, errors {s.errors:,}, dropped {s.dropped:,}, "
            f"interrupted {s.interrupted:,})",
        )
        figures.add_row("req/s", f"{fmt_rate(s.throughput_rps)} ok, {fmt_rate(s.attempts_rps)} all")
        if s.offered_rps is not None and s.achieved_rps is not None:
            share = f" ({s.achieved_rps / s.offered_rps:.0%})" if s.offered_rps > 0 else ""
            offered = Text(f"{fmt_rate(s.achieved_rps)} of {fmt_rate(s.offered_rps)} offered{share}")
            if s.load_not_achieved:
                offered.append("  below 90 %: not achieved", style="yellow")
            figures.add_row("achieved req/s", offered)
        figures.add_row("error %", fmt_percent(s.error_rate))
        figures.add_row("received MiB", fmt_mib(s.bytes))
        figures.add_row(
            "CPU s/1k req",
            f"target {fmt_cpu(s.target_cpu_s_per_1k)}, generator {fmt_cpu(s.generator_cpu_s_per_1k)}",
        )
        figures.add_row("target peak RSS MiB", fmt_mib(s.target_peak_rss_bytes))
        peak = s.generator_peak_cpu_percent
        figures.add_row("generator peak CPU %", MISSING if peak is None else f"{peak:.0f}")
        if s.cache_hit_ratio is not None:
            figures.add_row("cache hit %", fmt_percent(s.cache_hit_ratio, 1))
        parts += [figures, Text("")]

        latency = Table(title="latency ms", title_justify="left")
        latency.add_column("")
        for header in ("p50", "p90", "p95", "p99", "max", "mean"):
            latency.add_column(header, justify="right")
        latency.add_column("count", justify="right")
        for label, lat in (
            ("ok requests", s.latency_ms),
            ("all attempts", s.latency_all_ms),
            ("service time", s.service_ms),
        ):
            latency.add_row(
                label,
                *(fmt_ms(getattr(lat, k)) for k in ("p50", "p90", "p95", "p99", "max", "mean")),
                fmt_int(lat.count),
            )
        parts.append(latency)

    order = {name: i for i, name in enumerate(ERROR_CLASSES)}
    if errors:
        table = Table(title="errors (whole run)", title_justify="left")
        table.add_column("class")
        table.add_column("count", justify="right")
        table.add_column("status", justify="right")
        table.add_column("sample message", overflow="fold")
        for row in sorted(errors, key=lambda e: (order.get(e.error_class, 99), -e.count)):
            status_text = MISSING if row.status is None else str(row.status)
            table.add_row(row.error_class, fmt_int(row.count), status_text, row.message)
        parts.append(table)
    elif s is not None and s.errors_by_class:
        table = Table(title="errors by class (measured window)", title_justify="left")
        table.add_column("class")
        table.add_column("count", justify="right")
        for name in sorted(s.errors_by_class, key=lambda c: (order.get(c, 99), c)):
            table.add_row(name, fmt_int(s.errors_by_class[name]))
        parts.append(table)

    if run.target_stats:
        stats = _grid()
        for key, value in sorted(run.target_stats.items()):
            stats.add_row(str(key), str(value))
        parts += [Text("target stats", style="italic"), stats]
    return Group(*parts)


def render(renderable: RenderableType, width: int | None = None) -> str:
    """Render to plain text (no colour codes), e.g. for tests or logs.

    Args:
        renderable: any rich renderable.
        width: console width in columns; None lets rich decide (the terminal's width, or
            80).
    """
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return buffer.getvalue()


# ------------------------------------------------------------ experiment extras


def _fmt_figure(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def target_table(runs: Sequence[RunRecord]) -> Table | None:
    """What the targets themselves reported over the measured window, one row per run:
    each counter per request (``queries/req``), each gauge's mean and max, and the
    target's ``info`` facts. None when no run's target reported any of these.

    Cache hits and misses are left out: the comparison table shows the hit ratio.
    """
    per_request: list[str] = []
    gauges: list[str] = []
    info: list[str] = []
    for run in runs:
        stats = run.target_stats or {}
        for name in stats.get("per_request", {}):
            if name not in per_request and name not in ("cache_hits", "cache_misses"):
                per_request.append(name)
        for name in stats.get("gauges", {}):
            if name not in gauges:
                gauges.append(name)
        for name in stats.get("info", {}):
            if name not in info:
                info.append(name)
    if not (per_request or gauges or info):
        return None
    table = _compact_table("reported by the target (measured window)",
                           caption="per request: counter ÷ the target's request count; "
                                   "gauges sampled every second: mean / max")
    table.add_column("id", justify="right")
    table.add_column("variant")
    for name in per_request:
        table.add_column(f"{name}\nper req", justify="right")
    for name in gauges:
        table.add_column(f"{name}\nmean / max", justify="right")
    for name in info:
        table.add_column(name)
    for run in runs:
        stats = run.target_stats or {}
        cells = [str(run.id), run.variant]
        for name in per_request:
            value = stats.get("per_request", {}).get(name)
            cells.append(MISSING if value is None else _fmt_figure(float(value)))
        for name in gauges:
            g = stats.get("gauges", {}).get(name)
            cells.append(MISSING if not g else f"{_fmt_figure(g['mean'])} / {_fmt_figure(g['max'])}")
        for name in info:
            cells.append(str(stats.get("info", {}).get(name, MISSING)))
        table.add_row(*cells)
    return table


def look_for_text(text: str) -> RenderableType:
    """The experiment's "what to look for" text, under a heading."""
    out = Text("What to look for\n", style="bold")
    out.append(text.strip())
    return out


def skipped_text(skipped: Sequence[dict[str, str]]) -> RenderableType:
    """The variants ``lab run`` skipped, each with its reason."""
    out = Text()
    for i, skip in enumerate(skipped):
        if i:
            out.append("\n")
        out.append(f"skipped {skip['variant']}: ", style="yellow")
        out.append(skip["reason"])
    return out


def stages_table(run: RunRecord, stages: Sequence[StageFigures]) -> Table:
    """One row per load stage of a run: offered load, throughput, p50/p99, errors, and
    the Little's law check (requests in flight measured by the generator against
    throughput × mean latency; flagged when they differ by more than 20 %).

    ``t s`` is the time the figures cover (whole intervals); ``*`` marks a stage whose
    intervals reach into its neighbours (boundaries off whole seconds) or past the
    schedule's end, and a stage with no interval of its own shows its own span, its
    offered load and why it has no figures. A last row ``drain`` holds the intervals
    that lie mostly after the schedule's end (requests still in flight then, answered
    after it), apart from the last stage."""
    open_model = run.settings.load.model == "open"
    caption = ("offered: scheduled over the same seconds (none after the schedule's end). "
               "in flight: measured by the "
               "generator (and the target's own gauge) / predicted by Little's law L = X·W "
               "(X completed req/s, W mean latency); ✗ when they differ by more than 20 %")
    blended = [st for st in stages if st.outside_s > 0.05]
    if blended:
        caption += ("\n* its intervals reach into the neighbouring stages (a boundary inside an "
                    "interval) or past the schedule's end: "
                    + ", ".join(_borrowed(st) for st in blended))
    drain = next((st for st in stages if st.drain), None)
    if drain is not None:
        caption += (f"\ndrain: after the schedule's end at {_fmt_t(drain.stage_start_s)} s, "
                    "requests still in flight were answered; no arrivals are scheduled then, so "
                    "its req/s is a backlog being served")
    table = _compact_table(f"run {run.id} ({run.variant}) by stage", caption=caption)
    table.add_column("stage", justify="right")
    table.add_column("t s", justify="right")
    table.add_column("offered\nreq/s" if open_model else "VUs", justify="right")
    table.add_column("req/s", justify="right")
    table.add_column("p50\nms", justify="right")
    table.add_column("p99\nms", justify="right")
    table.add_column("err\n%", justify="right")
    show_target = any(st.in_flight_target is not None for st in stages)
    table.add_column("in flight\nmeasured", justify="right")
    if show_target:
        table.add_column("in flight\ntarget", justify="right")
    table.add_column("in flight\nX·W", justify="right")
    table.add_column("", justify="left")
    for st in stages:
        span = f"{_fmt_t(st.start_s)}–{_fmt_t(st.end_s)}" + ("*" if st in blended else "")
        cells: list[str | Text] = ["drain" if st.drain else str(st.stage + 1), span,
                                   fmt_rate(st.offered)]
        if st.note is not None:  # no interval of its own: no figures, and why
            cells += [MISSING] * (6 + show_target) + [Text(st.note, style="dim")]
            table.add_row(*cells)
            continue
        ok = st.little_ok
        cells += [
            fmt_rate(st.throughput_rps), fmt_ms(st.p50_ms), fmt_ms(st.p99_ms),
            _pct(st.error_rate * 100) if st.error_rate is not None else MISSING,
            MISSING if st.in_flight_measured is None else _fmt_figure(st.in_flight_measured)]
        if show_target:
            cells.append(MISSING if st.in_flight_target is None else _fmt_figure(st.in_flight_target))
        mark = Text("") if ok is None else Text("✓", style="green") if ok else Text("✗", style="red")
        change = st.queue_change
        if ok is False and change is not None:  # not a steady state: say so, next to the ✗
            first, last = change
            verb = "grew" if last > first else "drained"
            mark.append(f" queue {verb} {_fmt_figure(first)}→{_fmt_figure(last)}", style="dim")
        cells += [MISSING if st.in_flight_little is None else _fmt_figure(st.in_flight_little), mark]
        table.add_row(*cells)
    return table


def _borrowed(st: StageFigures) -> str:
    """What a blended row's intervals hold of other time, for the caption: ``stage 7
    0.7 s after the schedule's end``, ``drain 1.0 s in stage 7``, ``stage 3 0.4 s``."""
    if st.drain:
        return f"drain {st.outside_s:.1f} s in stage {st.stage}"
    if st.drain_s <= 0.05:
        return f"stage {st.stage + 1} {st.outside_s:.1f} s"
    text = f"stage {st.stage + 1} {st.drain_s:.1f} s after the schedule's end"
    elsewhere = st.outside_s - st.drain_s
    if elsewhere > 0.05:
        text += f" and {elsewhere:.1f} s in neighbouring stages"
    return text


def _fmt_t(t_s: float) -> str:
    """Seconds into the run: whole seconds as such, else one decimal (stage boundaries
    scaled by ``--duration``)."""
    return f"{t_s:.0f}" if abs(t_s - round(t_s)) < 0.05 else f"{t_s:.1f}"


def thresholds_text(results: Sequence[ThresholdResult]) -> RenderableType:
    """Every threshold check, ✓ or ✗, run by run, with the measured figure."""
    out = Text("Thresholds\n", style="bold")
    for i, r in enumerate(results):
        if i:
            out.append("\n")
        out.append("✓ " if r.passed else "✗ ", style="green" if r.passed else "bold red")
        out.append(f"run {r.run_id} ({r.variant}) {r.describe()}")
    failed = sum(1 for r in results if not r.passed)
    out.append(f"\n{len(results) - failed} passed, {failed} failed",
               style="red" if failed else "green")
    return out


def _spread_cell(value: Spread | None, fmt: Callable[[float | None], str]) -> str:
    if value is None:
        return MISSING
    if value.low == value.high:
        return fmt(value.median)
    return f"{fmt(value.median)} [{fmt(value.low)}–{fmt(value.high)}]"


def _figure_fmt(name: str) -> Callable[[float | None], str]:
    """A noise figure (base unit) as its table cell: ``1,234``, ``4.12``, ``1.50%``."""
    metric = next(m for m in NOISE_FIGURES if m.name == name)
    percent = "%" if metric.kind == "ratio" else ""
    return lambda v: MISSING if v is None else metric.format(metric.scale(v)) + percent


def repeats_table(groups: Sequence[Sequence[RunRecord]],
                  intervals: dict[int, list[IntervalRow]]) -> Table:
    """Repeated variants: the median of each figure and, in brackets, its range (min–max
    over the repetitions)."""
    from lab.analysis.noise import spread

    table = _compact_table("repeats: median \\[min–max]")
    table.add_column("variant")
    table.add_column("runs", justify="right")
    for fig in NOISE_FIGURES:
        table.add_column(fig.name.replace("_rps", " req/s").replace("_ms", " ms").replace("_", " "),
                         justify="right")
    for group in groups:
        row = [group[0].variant, ", ".join(str(r.id) for r in group)]
        for fig in NOISE_FIGURES:
            row.append(_spread_cell(spread(fig, group, intervals), _figure_fmt(fig.name)))
        table.add_row(*row)
    return table


def changes_table(group: Sequence[RunRecord], changes: Sequence[Change]) -> Table:
    """One candidate (a run or its repetitions) against the baseline, figure by figure:
    each side's median [range] and a verdict that is "within noise" unless the ranges do
    not overlap."""
    ids = ", ".join(str(r.id) for r in group)
    table = _compact_table(f"run {ids} ({group[0].variant}) vs baseline",
                           caption="range: min–max over repeated runs, or ± 2 standard errors "
                                   "of one run's 1 s intervals")
    for header in ("figure", "baseline", "candidate", "change", "verdict"):
        table.add_column(header, justify="left" if header in ("figure", "verdict") else "right")
    styles = {"better": "green", "worse": "bold red", "within noise": "dim", "not measured": "dim"}
    for c in changes:
        fmt = _figure_fmt(c.figure)
        change = MISSING if c.change_pct is None else f"{c.change_pct:+.1f}%".replace("-", MINUS)
        table.add_row(c.figure, _spread_cell(c.baseline, fmt), _spread_cell(c.candidate, fmt), change,
                      Text(c.verdict, style=styles[c.verdict]))
    return table
