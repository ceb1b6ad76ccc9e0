"""The HTML report's page: header, runs, comparison, replicas, charts over time, sweeps and
errors, assembled from ``ReportData`` (``render_report``); it touches no database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from lab import __version__
from lab.report.fleet import decisions_table, replicas_table
from lab.report.html.charts import (
    PLOT_BG,
    LegendItem,
    Line,
    Mark,
    attr,
    chart_figure,
    run_color,
    run_dash,
    should_log,
    svg_chart,
)
from lab.report.html.data import ReportData, SweepEntry
from lab.report.html.styles import CSS
from lab.report.html.tables import rich_table_html
from lab.report.table import (
    MISSING,
    comparison_table,
    fmt_rate,
    fmt_seconds,
    stages_table,
    target_table,
)

if TYPE_CHECKING:
    from lab.analysis.usl import FitResult
    from lab.session import FleetReport
    from lab.store import RunRecord


MIB = 1024 * 1024
"""Bytes per MiB."""




def run_label(run: RunRecord) -> str:
    """How a run is named in legends: ``1 lru``, ``3 default vus=4``, plus its status when it
    did not complete."""
    label = f"{run.id} {run.variant}"
    if run.sweep_id is not None and run.sweep_level is not None:
        sweep = run.settings.sweep
        parameter = sweep.parameter if sweep is not None else None
        label += f" {parameter or 'level'}={run.sweep_level:g}"
    if run.status != "completed":
        label += f" ({run.status})"
    return label


def _load_text(run: RunRecord) -> str:
    load = run.settings.load
    if not load.table:
        return MISSING
    parts = [load.model]
    if load.stages:
        parts.append(f"{len(load.stages)} stages")
    elif load.model == "open" and load.rate is not None:
        parts.append(f"{load.rate:g} req/s")
    elif load.vus is not None:
        parts.append(f"{load.vus} VU{'' if load.vus == 1 else 's'}")
    if load.duration_s is not None and not load.stages:
        parts.append(f"{load.duration_s:g} s")
    if load.warmup_s:
        parts.append(f"warm-up {load.warmup_s:g} s")
    workers = load.workers
    note = run.settings.generator_workers_note
    if note:
        parts.append(f"{workers} generator worker{'' if workers == 1 else 's'} ({note})")
    elif workers and workers != 1:
        parts.append(f"{workers} generator workers")
    return ", ".join(parts)


def _host_text(host: dict[str, object]) -> str:
    parts = []
    if host.get("cores"):
        parts.append(f"{host['cores']} cores")
    memory = host.get("memory_bytes")
    if isinstance(memory, int | float) and memory:
        parts.append(f"{memory / 1024**3:.1f} GiB")
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if host.get("platform"):
        parts.append(str(host["platform"]))
    return ", ".join(parts) or MISSING


def _utc(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_s))


def _status_html(run: RunRecord) -> str:
    cls = {"completed": "good", "failed": "bad", "aborted": "warn"}.get(run.status, "info")
    out = f'<span class="status {cls}">{escape(run.status)}</span>'
    if run.summary is not None and run.summary.generator_bound:
        out += ' <span class="status warn">gen-bound</span>'
    return out


def _header(data: ReportData) -> str:
    runs = data.runs
    experiments: dict[str, str] = {}
    for run in runs:
        experiments.setdefault(run.experiment, run.title)
    for entry in data.sweeps:
        experiments.setdefault(entry.experiment, "")
    names = ", ".join(experiments) or "no runs"
    hosts = list(dict.fromkeys(_host_text(run.host) for run in runs))
    versions = list(dict.fromkeys(run.lab_version or MISSING for run in runs))
    generated = data.generated_at or time.time()
    facts = [
        ("experiment" + ("s" if len(experiments) > 1 else ""),
         "; ".join(f"{name} — {title}" if title else name for name, title in experiments.items())),
        ("runs", ", ".join(str(run.id) for run in runs)),
        ("host" + ("s" if len(hosts) > 1 else ""), "; ".join(hosts) or MISSING),
        ("lab version", f"{', '.join(versions)} (recorded); {__version__} (this report)"),
        ("generated", _utc(generated) + (f" from {data.source}" if data.source else "")),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    return (f"<header><h1>Scalability Lab report: {escape(names)}</h1>"
            f'<table class="facts">{rows}</table></header>')


def _runs_section(data: ReportData) -> str:
    with_reason = any(run.reason for run in data.runs)
    rows = []
    for i, run in enumerate(data.runs):
        swatch = (f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
                  f'rx="3" fill="{attr(run_color(i))}"/></svg>')
        reason = escape(run.reason or "")
        rows.append(
            f'<tr class="{"" if run.status == "completed" else "not-completed"}">'
            f"<td class=\"num\">{swatch} {run.id}</td><td>{escape(run.experiment)}</td>"
            f"<td>{escape(run.variant)}</td><td>{_status_html(run)}</td>"
            f'<td class="nowrap">{escape(run.started_at.replace("T", " ")[:19])}</td>'
            f'<td class="num">{escape(fmt_seconds(run.duration_s))}</td>'
            f"<td>{escape(_load_text(run))}</td>"
            + (f'<td class="reason">{reason}</td>' if with_reason else "") + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("id", "experiment", "variant", "status", "started (UTC)", "duration s", "load",
                    *(["reason"] if with_reason else [])))
    return ('<section><h2>Runs</h2><div class="table-wrap"><table class="runs">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def _comparison_section(data: ReportData) -> str:
    runs = data.runs
    parts = ['<section><h2>Comparison</h2>',
             '<p class="lead">The same figures as <code>lab compare</code>: goodput, latency of '
             "successful requests, errors, dropped requests, the target's CPU-seconds per 1,000 "
             "requests and peak RSS; under each figure its change against the first run "
             '(<span class="good">better</span> / <span class="bad">worse</span>).</p>',
             rich_table_html(comparison_table(runs), "compare")]
    extra = target_table(runs)
    if extra is not None:
        parts.append(rich_table_html(extra, "target"))
    for run in runs:
        if data.stages.get(run.id):
            parts.append(rich_table_html(stages_table(run, data.stages[run.id]), "stages"))
    parts.append("</section>")
    return "".join(parts)


def _warmup_shade(runs: Sequence[RunRecord]) -> tuple[float, float, str] | None:
    warmups = {run.settings.load.warmup_s for run in runs}
    if len(warmups) == 1:
        w = math.ceil(warmups.pop() - 1e-9)
        if w > 0:
            return (0.0, float(w), "warm-up")
    return None


def _replicas_section(data: ReportData) -> str:
    """Per run behind a balancer: the replicas table and the autoscaler's decisions that
    changed the count or were held back by a rule, as ``lab show`` prints them."""
    runs = [run for run in dict((run.id, run) for run in data.runs).values() if run.id in data.fleets]
    if not runs:
        return ""
    parts = ['<section><h2>Replicas</h2>',
             '<p class="lead">The same tables as <code>lab show</code>, for each run behind the '
             "balancer: each replica's share of the traffic, its p50/p99 as nginx measured it, its "
             "CPU-seconds per 1,000 of its requests, and when it started, became ready and ended "
             "(seconds after the load began); then the autoscaler's decisions that changed the "
             "replica count (✓) or were held back by a rule.</p>"]
    for run in runs:
        fleet = data.fleets[run.id]
        parts.append(rich_table_html(replicas_table(run, fleet), "replicas"))
        if fleet.decisions:
            parts.append(rich_table_html(decisions_table(run, fleet.decisions), "decisions"))
    parts.append("</section>")
    return "".join(parts)


def _count_steps(at_start: int, samples: Sequence[tuple[float, int]]) -> list[tuple[float, float | None]]:
    """A count as steps: ``at_start`` from the start of the load, then each sampled value
    (taken at the end of an interval) held from its sample to the next, so a change is
    never drawn before it was seen."""
    current = float(at_start)
    points: list[tuple[float, float | None]] = [(0.0, current)]
    for t_s, value in samples:
        if value != current:
            points += [(t_s, current), (t_s, float(value))]
            current = float(value)
    if samples:
        points.append((samples[-1][0], current))
    return points


def _replica_lines(fleet: FleetReport, color: str, label: str, dash: str) -> list[Line]:
    """Replicas ready (solid) and desired (dashed) of a run over time. At the start of the
    load: the replicas ready by then, and the ones started for it (the count asked for)."""
    replicas = fleet.figures.replicas
    ready_0 = sum(1 for r in replicas if r.ready_s is not None and r.ready_s <= 0
                  and (r.ended_s is None or r.ended_s > 0))
    desired_0 = sum(1 for r in replicas if r.started_s <= 0 and (r.ended_s is None or r.ended_s > 0))
    return [Line(_count_steps(ready_0, [(c.t_s, c.ready) for c in fleet.counts]), color,
                 f"{label} ready", dash=dash),
            Line(_count_steps(desired_0, [(c.t_s, c.desired) for c in fleet.counts]), color,
                 f"{label} desired", width=1.5, dash="6 4")]


def _decision_marks(run: RunRecord, fleet: FleetReport, color: str) -> list[Mark]:
    """The autoscaler's applied decisions of a run as vertical marks labelled with the new
    count (↑ up, ↓ down), each with its reason as the tooltip."""
    marks = []
    for d in fleet.decisions:
        if not d.applied or d.desired == d.current:
            continue
        arrow = "↑" if d.desired > d.current else "↓"
        marks.append(Mark(d.t_s, f"{arrow}{d.desired}", color,
                          title=f"run {run.id} at {d.t_s:g} s: {d.current} → {d.desired} replicas "
                                f"({d.reason})"))
    return marks


def _series_section(data: ReportData) -> str:
    runs = data.runs
    throughput: list[Line] = []
    errors: list[Line] = []
    latency: list[Line] = []
    cpu: list[Line] = []
    rss: list[Line] = []
    replicas: list[Line] = []
    legend: list[LegendItem] = []
    replica_legend: list[LegendItem] = []
    decisions: list[Mark] = []
    any_errors = False
    t_max = 0.0
    for i, run in enumerate(runs):
        color, dash, label = run_color(i), run_dash(i), run_label(run)
        legend.append(LegendItem(label, color, dash))
        live = [iv for iv in data.intervals.get(run.id, []) if iv.duration_s > 0]
        # Each interval's figure is plotted at its middle.
        ends = [iv.t_s + iv.duration_s / 2 for iv in live]
        t_max = max([t_max, *(iv.t_s + iv.duration_s for iv in live)])
        throughput.append(Line([(e, iv.ok / iv.duration_s) for e, iv in zip(ends, live, strict=True)],
                               color, label, dash=dash))
        if any(iv.errors for iv in live):
            any_errors = True
            errors.append(Line([(e, iv.errors / iv.duration_s) for e, iv in zip(ends, live, strict=True)],
                               color, f"{label} errors", width=1.5, dash="2 3"))
        for key, width, pdash in (("p50_ms", 1.5, "2 3"), ("p99_ms", 1.5, "7 4"), ("p95_ms", 2.5, dash)):
            latency.append(Line([(e, getattr(iv, key) if iv.ok else None)
                                 for e, iv in zip(ends, live, strict=True)],
                                color, f"{label} {key[:3]}", width=width, dash=pdash))
        res = data.target_resources.get(run.id, [])
        if res:
            t_max = max(t_max, max(r.t_s for r in res))
        cpu.append(Line([(r.t_s, r.cpu_percent) for r in res], color, label, dash=dash))
        rss.append(Line([(r.t_s, r.rss_bytes / MIB) for r in res], color, label, dash=dash))
        fleet = data.fleets.get(run.id)
        if fleet is not None and fleet.counts:
            t_max = max(t_max, max(c.t_s for c in fleet.counts))
            replicas += _replica_lines(fleet, color, label, dash)
            replica_legend.append(LegendItem(label, color, dash))
        if fleet is not None:
            decisions += _decision_marks(run, fleet, color)
    shade = _warmup_shade(runs)
    x_range = (0.0, t_max) if t_max > 0 else None
    x_label = "seconds after the load began"
    common = {"x_label": x_label, "x_range": x_range, "shade": shade}
    # Only runs behind a balancer add anything here, so other reports stay as they were.
    decision_key = ([LegendItem("dashed verticals: the autoscaler's decisions, ↑↓ the new count",
                                "#57606a", "5 4")] if decisions else [])

    figures = []
    tp_lines = throughput + errors
    tp_legend = legend + ([LegendItem("dotted: errors/s", "#57606a", "2 3")] if any_errors else [])
    figures.append(chart_figure(
        "Throughput", svg_chart(tp_lines, y_label="ok req/s", log_y=should_log(throughput),
                                marks=decisions, **common),
        tp_legend + decision_key, "successful requests per second (goodput), each interval at its middle"))
    p95_lines = [line for line in latency if line.label.endswith("p95")]
    figures.append(chart_figure(
        "Latency", svg_chart(latency, y_label="ms", log_y=should_log(p95_lines), marks=decisions, **common),
        legend + [LegendItem("p95 solid · p99 dashed · p50 dotted", "#57606a")] + decision_key,
        "percentiles of successful requests in each interval"))
    if replicas:
        figures.append(chart_figure(
            "Replicas", svg_chart(replicas, y_label="replicas", integer_y=True, marks=decisions, **common),
            replica_legend + [LegendItem("ready solid · desired dashed", "#57606a", "6 4")] + decision_key,
            "replicas ready and desired, each count (taken at the end of an interval) held "
            "until the next"))
    figures.append(chart_figure(
        "Target CPU", svg_chart(cpu, y_label="% of one core", **common), legend,
        "the target's whole process tree"))
    figures.append(chart_figure(
        "Target RSS", svg_chart(rss, y_label="MiB", **common), legend,
        "resident memory of the target's whole process tree"))
    note = ""
    if shade is not None:
        note = ('<p class="note">The grey band is the warm-up, which the summaries leave out.</p>')
    return ('<section><h2>Over time</h2><div class="charts">' + "".join(figures) + "</div>"
            + note + "</section>")


# ------------------------------------------------------------------------ sweeps


def _fmt_num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _pm(value: float, stderr: float | None, fixed: bool = False) -> str:
    if fixed:
        return f"{_fmt_num(value)} (fixed)"
    return _fmt_num(value) + (f" ± {_fmt_num(stderr, 2)}" if stderr is not None else "")


def _x_max_text(fit: FitResult) -> str:
    if fit.x_max is None:
        return "unbounded"
    text = fmt_rate(fit.x_max)
    return f"→ {text} (asymptote)" if fit.x_max_kind == "asymptote" else text


def _fits_table(entries: Sequence[tuple[int, SweepEntry]]) -> str:
    rows = []
    for i, entry in entries:
        a = entry.analysis
        swatch = (f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
                  f'rx="3" fill="{attr(run_color(i))}"/></svg>')
        name = f"{swatch} {escape(entry.variant)} <span class=\"dim\">(sweep {entry.id})</span>"
        fits = [fit for fit in (a.usl, a.amdahl) if fit is not None]
        if not fits:
            why = a.fit_note or "no fit"
            if a.slo_p99_ms is not None:
                cap = ("no level met the SLO" if a.capacity_rps is None
                       else f"capacity at the SLO: {fmt_rate(a.capacity_rps)} req/s")
                why = f"{cap} (p99 < {a.slo_p99_ms:g} ms, ≥ 99 % of the offered rate achieved)"
            rows.append(f'<tr><td class="variant">{name}</td><td colspan="8" class="verdict">'
                        f"{escape(why)}</td></tr>")
            continue
        for fit in fits:
            rows.append(
                f'<tr><td class="variant">{name}</td><td>{escape(fit.model)}</td>'
                f'<td class="num">{escape(_pm(fit.lambda_, fit.lambda_stderr))}</td>'
                f'<td class="num">{escape(_pm(fit.sigma, fit.sigma_stderr))}</td>'
                f'<td class="num">{escape(_pm(fit.kappa, fit.kappa_stderr, fit.model == "amdahl"))}</td>'
                f'<td class="num">{fit.r2:.3f}</td>'
                f'<td class="num">{escape(_fmt_num(fit.n_star))}</td>'
                f'<td class="num">{escape(_x_max_text(fit))}</td>'
                f'<td class="verdict">{escape(fit.verdict)}</td></tr>')
    head = "".join(f'<th class="{c}">{h}</th>' for h, c in (
        ("variant", ""), ("model", ""), ("λ req/s", "num"), ("σ", "num"), ("κ", "num"),
        ("R²", "num"), ("N*", "num"), ("X(N*) req/s", "num"), ("verdict", "")))
    return ('<div class="table-wrap"><table class="fits"><caption>Fits: X(N) = λN / (1 + σ(N−1) + '
            f"κN(N−1))</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            '<p class="note">λ: throughput at N = 1; σ: contention (the serialised share); κ: '
            "coherency (the cost of keeping shared state consistent); N*: the concurrency of peak "
            "throughput X(N*); ± standard errors. Amdahl's law is the USL with κ = 0.</p></div>")


def _usl_curve(fit: FitResult, lo: float, hi: float) -> list[tuple[float, float | None]]:
    steps = 120
    return [(lo + (hi - lo) * k / steps, float(fit.predict(lo + (hi - lo) * k / steps)))
            for k in range(steps + 1)]


def _sweep_group(parameter: str, entries: Sequence[tuple[int, SweepEntry]]) -> str:
    from lab.analysis.sweep import fit_levels

    rate_sweep = all(e.analysis.slo_p99_ms is not None for _i, e in entries)
    figures: list[str] = []
    legend: list[LegendItem] = []
    if rate_sweep:
        p99: list[Line] = []
        achieved: list[Line] = []
        marks: list[Mark] = []
        for i, e in entries:
            color = run_color(i)
            done = [lv for lv in fit_levels(e.analysis.levels) if lv.offered_rps]
            legend.append(LegendItem(f"{e.variant} (sweep {e.id})", color, marker=True))
            p99.append(Line([(lv.offered_rps or 0.0, lv.p99_ms) for lv in done], color,
                            f"{e.variant} p99 ms", markers=True))
            achieved.append(Line([(lv.offered_rps or 0.0, lv.throughput_rps) for lv in done], color,
                                 f"{e.variant} ok req/s", markers=True))
            if e.analysis.capacity_rps is not None:
                marks.append(Mark(e.analysis.capacity_rps,
                                  f"capacity {fmt_rate(e.analysis.capacity_rps)}", color))
        slo = entries[0][1].analysis.slo_p99_ms or 0.0
        figures.append(chart_figure(
            "p99 latency against the offered rate",
            svg_chart(p99, x_label="offered req/s", y_label="p99 ms", log_y=should_log(p99),
                      y_from_zero=True, marks=[Mark(slo, f"SLO p99 < {slo:g} ms", "#57606a", "y")]),
            legend))
        figures.append(chart_figure(
            "Achieved throughput against the offered rate",
            svg_chart(achieved, x_label="offered req/s", y_label="ok req/s", marks=marks), legend))
    else:
        points: list[Line] = []
        curves: list[Line] = []
        latency: list[Line] = []
        marks = []
        hi_all = 0.0
        for _i, e in entries:
            done = fit_levels(e.analysis.levels)
            if done:
                hi_all = max(hi_all, max(lv.level for lv in done))
            fit = e.analysis.usl
            if fit is not None and fit.n_star is not None:
                hi_all = max(hi_all, min(fit.n_star * 1.2, hi_all * 4))
        for i, e in entries:
            color = run_color(i)
            done = fit_levels(e.analysis.levels)
            name = f"{e.variant} (sweep {e.id})"
            legend.append(LegendItem(f"{name} measured", color, marker=True))
            points.append(Line([(lv.level, lv.throughput_rps) for lv in done], color,
                               f"{name} X(N)", markers=True, connect=False))
            latency.append(Line([(lv.level, lv.latency_mean_ms) for lv in done], color,
                                f"{name} R(N) mean ms", markers=True))
            latency.append(Line([(lv.level, lv.p99_ms) for lv in done], color,
                                f"{name} p99 ms", width=1.5, dash="7 4"))
            fit = e.analysis.usl
            if fit is not None and done:
                lo = max(1.0, min(lv.level for lv in done))  # the model means nothing below N = 1
                curves.append(Line(_usl_curve(fit, lo, max(hi_all, lo + 1)), color,
                                   f"{name} USL fit", width=2))
                legend.append(LegendItem(f"{name} USL fit", color))
                if fit.n_star is not None:
                    marks.append(Mark(fit.n_star, f"N* ≈ {fit.n_star:.3g}", color))
        x_range = (0.0, hi_all) if hi_all > 0 else None
        figures.append(chart_figure(
            f"Throughput X(N) against {parameter}",
            svg_chart(curves + points, x_label=parameter, y_label="ok req/s", x_range=x_range,
                      marks=marks, empty_text="no completed levels"),
            legend, "dots: measured; line: the fitted Universal Scalability Law; dashed: N*, "
                    "the concurrency of peak throughput"))
        figures.append(chart_figure(
            f"Latency R(N) against {parameter}",
            svg_chart(latency, x_label=parameter, y_label="ms", x_range=x_range,
                      log_y=should_log(latency[::2])),
            [item for item in legend if item.marker]
            + [LegendItem("mean solid · p99 dashed", "#57606a")]))
    return f'<div class="charts">{"".join(figures)}</div>'


def _sweeps_section(data: ReportData) -> str:
    if not data.sweeps:
        return ""
    from lab.report.sweep_report import levels_table

    # A sweep takes the colour of its first run in the report, so the sections agree.
    first_run: dict[int, int] = {}
    for i, run in enumerate(data.runs):
        if run.sweep_id is not None:
            first_run.setdefault(run.sweep_id, i)
    groups: dict[str, list[tuple[int, SweepEntry]]] = {}
    for k, entry in enumerate(data.sweeps):
        i = first_run.get(entry.id, len(data.runs) + k)
        groups.setdefault(entry.analysis.parameter, []).append((i, entry))
    parts = ["<section><h2>Sweeps</h2>",
             '<p class="lead">Every level of each sweep a run above belongs to; variants overlaid.</p>']
    for parameter, entries in groups.items():
        parts.append(f"<h3>Sweep of {escape(parameter)}</h3>")
        parts.append(_sweep_group(parameter, entries))
        parts.append(_fits_table(entries))
        for _i, entry in entries:
            parts.append(rich_table_html(levels_table(f"{entry.variant} (sweep {entry.id})",
                                                      entry.analysis), "levels"))
    parts.append("</section>")
    return "".join(parts)


def _errors_section(data: ReportData) -> str:
    rows = []
    for run in data.runs:
        for err in data.errors.get(run.id, []):
            rows.append(f'<tr><td class="num">{run.id}</td><td>{escape(run.variant)}</td>'
                        f"<td>{escape(err.error_class)}</td>"
                        f'<td class="num">{"" if err.status is None else err.status}</td>'
                        f'<td class="num">{err.count:,}</td>'
                        f'<td class="reason">{escape(err.message)}</td></tr>')
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("run", "variant", "class", "status", "count", "sample"))
    return ('<section><h2>Errors</h2><div class="table-wrap"><table class="errors">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")



def render_report(data: ReportData) -> str:
    """The whole report as one HTML document (UTF-8 text).

    Sections: the header (experiments, run ids, host, lab version, when and from what it
    was generated), the runs (status and the reason of a failed or aborted one), the
    comparison table with deltas against the first run (and the figures reported by the
    target, and per-stage tables); for runs behind a balancer, each replica's figures and
    the autoscaler's decisions; charts over time of throughput (req/s), latency
    (p50/p95/p99 ms), replicas ready and desired (runs behind a balancer, with the
    autoscaler's applied decisions marked on these three), target CPU (% of one core) and
    target RSS (MiB), one line per run;
    then, when any run is a level of a sweep, the sweep curves (X(N) measured, the USL
    fit, N*; latency R(N)) with the fits and the level tables; then errors, if any.
    """
    names = ", ".join(dict.fromkeys(run.experiment for run in data.runs)) or "no runs"
    ids = ", ".join(str(run.id) for run in data.runs)
    body = [_header(data), _runs_section(data)]
    if data.runs:
        body += [_comparison_section(data), _replicas_section(data), _series_section(data)]
    body += [_sweeps_section(data), _errors_section(data)]
    generated = _utc(data.generated_at or time.time())
    command = "lab report " + " ".join(str(run.id) for run in data.runs)
    footer = (f"<footer>Scalability Lab {escape(__version__)} · <code>{escape(command)}</code>"
              f" · {escape(generated)} · self-contained: no scripts, fonts or network</footer>")
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(f'lab report: {names} (runs {ids})')}</title>"
            f"<style>{CSS.replace('%PLOT_BG%', PLOT_BG)}</style></head><body><main>"
            + "".join(body) + footer + "</main></body></html>\n")
