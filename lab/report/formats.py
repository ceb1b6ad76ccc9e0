"""Machine- and review-oriented renderings of stored runs: CSV, GitHub markdown, JUnit XML,
and the per-second exports of ``lab export``.

Pure functions over ``lab.store`` dataclasses (``RunRecord``, ``IntervalRow``,
``ResourceRow``) and ``lab.analysis.thresholds.ThresholdResult``; nothing here opens the database.

Units everywhere: latencies in ms, rates in req/s, times and durations in s, memory in
bytes, CPU in CPU-seconds per 1,000 requests (``*_s_per_1k``) or percent of one core
(``cpu_percent``), ratios as fractions 0..1 (``error_rate``, ``cache_hit_ratio``) unless a
header says ``%``.

* ``to_csv``: one row per run (the summary figures), for spreadsheets.
* ``to_markdown``: one compact table plus threshold verdicts and notes, sized for a
  pull-request comment.
* ``to_junit``: JUnit XML with one test case per threshold per run, for CI systems
  (Jenkins, GitLab, GitHub test reporters).
* ``series_csv`` / ``resources_csv`` / ``targets_csv`` / ``export_json``: the per-interval
  series, resource samples and target gauges of runs (``lab export``);
  ``replica_intervals_csv`` / ``replica_counts_csv`` / ``autoscale_events_csv``: the
  replicas' traffic per interval, the replica count per interval and the autoscaler's
  decisions of runs behind a balancer.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from lab.metrics import CACHE_HIT, MARKDOWN_COLUMNS, Metric
from lab.report.fleet import unrouted_text
from lab.report.json_report import client_of, dumps, generator_workers_of, load_source_of, series_json
from lab.report.table import format_delta, strip_ansi

if TYPE_CHECKING:
    from lab.analysis.replicas import ReplicaInterval
    from lab.analysis.thresholds import ThresholdResult
    from lab.figures import Summary
    from lab.session import FleetReport
    from lab.store import AutoscaleEventRow, IntervalRow, ReplicaCountRow, ResourceRow, RunRecord

# --------------------------------------------------------------------------- shared helpers

_Row = TypeVar("_Row")

REASON_CHARS = 200
"""Longest reason shown in a markdown note or a JUnit failure message, characters."""
MAX_THRESHOLD_LINES = 60
"""Markdown lists at most this many threshold verdicts (failures first), so a comment
for many runs × thresholds stays readable; the rest are counted."""

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""Characters XML 1.0 forbids (an ESC in a reason would make the whole file unreadable)."""


def _clean(text: str) -> str:
    """Text without terminal escape sequences and without the control characters XML 1.0
    forbids (tabs and newlines stay)."""
    return _XML_INVALID.sub("", strip_ansi(text))


def _latency(summary: Summary, key: str) -> float | None:
    """A latency figure of successful requests, ms; None when none succeeded."""
    return getattr(summary.latency_ms, key) if summary.latency_ms.count else None


def _one_line(text: str, limit: int = REASON_CHARS) -> str:
    """Whitespace (newlines included) collapsed to single spaces, cut to ``limit`` chars."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _shown_actual(result: ThresholdResult) -> str:
    """The run's figure of a threshold result (``61.2 ms``), as ``describe()`` says it."""
    return result.metric.text(result.actual)


def _results_of(run: RunRecord, results: Sequence[ThresholdResult]) -> list[ThresholdResult]:
    return [r for r in results if r.run_id == run.id]


def _engine_note(runs: Sequence[RunRecord]) -> list[str]:
    """Which client engine and how many generator workers drove the runs, as one note
    (``load from: #1 httpx client, 1 generator worker; #2, #3 fast client, 2 ...``)."""

    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(load_source_of(run), []).append(f"#{run.id}")
    if len(groups) == 1:
        return [f"load from: {next(iter(groups))}"]
    return ["load from: " + "; ".join(f"{', '.join(ids)} {kind}" for kind, ids in groups.items())]


# --------------------------------------------------------------------------- CSV (one row per run)

CSV_COLUMNS = (
    "id", "experiment", "variant", "status", "reason", "client", "generator_workers",
    "requests", "ok", "errors", "dropped", "throughput_rps", "attempts_rps",
    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "error_rate",
    "target_cpu_s_per_1k", "target_peak_rss_bytes", "cache_hit_ratio", "generator_bound",
)
"""Header of ``to_csv``, in order."""
FLEET_CSV_COLUMNS = ("replica_seconds", "max_ready", "unrouted", "scale_events")
"""Columns ``to_csv`` adds after ``CSV_COLUMNS`` when any run was behind a balancer."""


def _csv_value(value: Any, digits: int | None = None) -> str:
    """A CSV cell: empty for None, ``true``/``false`` for booleans, floats rounded to
    ``digits`` decimals (shortest exact text otherwise)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, digits) if digits is not None else value)
    return str(value)


def _write_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def to_csv(runs: Sequence[RunRecord], fleets: Mapping[int, FleetReport] | None = None) -> str:
    """The runs as CSV, one row per run after a header (``CSV_COLUMNS``; then
    ``FLEET_CSV_COLUMNS`` when any run has replicas in ``fleets``).

    Units: rates in req/s (``throughput_rps`` is goodput, ``attempts_rps`` counts errors
    too), latencies of successful requests in ms, ``error_rate`` and ``cache_hit_ratio``
    as fractions 0..1, ``target_cpu_s_per_1k`` in CPU-seconds per 1,000 requests,
    ``target_peak_rss_bytes`` in bytes, ``generator_bound`` ``true``/``false``. A value
    that was not measured (no summary, no successful request, no cache stats) is an
    empty cell. Lines end with ``\\n``. Runs behind a balancer: ``replica_seconds`` (the
    replicas' seconds alive in the measured window, summed: the cost), ``max_ready``
    (the most replicas ready at once), ``unrouted`` (requests that arrived with no
    replica ready) and ``scale_events`` (the autoscaler's decisions that changed the
    count); empty for the other runs.
    """
    fleets = fleets or {}
    with_fleet = any(run.id in fleets for run in runs)
    rows = []
    for run in runs:
        s = run.summary
        reason = None if run.reason is None else _clean(run.reason)
        row = [str(run.id), run.experiment, run.variant, run.status, _csv_value(reason),
               _csv_value(client_of(run)), _csv_value(generator_workers_of(run))]
        if s is None:
            row += [""] * (len(CSV_COLUMNS) - len(row))
        else:
            row += [_csv_value(s.requests), _csv_value(s.ok), _csv_value(s.errors),
                    _csv_value(s.dropped), _csv_value(s.throughput_rps, 3),
                    _csv_value(s.attempts_rps, 3)]
            row += [_csv_value(_latency(s, key), 3) for key in ("p50", "p90", "p95", "p99", "max", "mean")]
            row += [_csv_value(s.error_rate, 6), _csv_value(s.target_cpu_s_per_1k, 4),
                    _csv_value(s.target_peak_rss_bytes), _csv_value(s.cache_hit_ratio, 4),
                    _csv_value(s.generator_bound)]
        if with_fleet:
            fleet = fleets.get(run.id)
            row += ([""] * len(FLEET_CSV_COLUMNS) if fleet is None else [
                _csv_value(fleet.figures.replica_seconds, 3), _csv_value(fleet.figures.max_ready),
                _csv_value(fleet.figures.unrouted), _csv_value(sum(d.applied for d in fleet.decisions))])
        rows.append(row)
    return _write_csv(CSV_COLUMNS + (FLEET_CSV_COLUMNS if with_fleet else ()), rows)


# --------------------------------------------------------------------------- markdown


def _md_text(text: str) -> str:
    """Text that GitHub shows as written: ``<``, ``>`` and ``&`` as entities (a reason
    like ``in <module>`` would otherwise lose its tag-like part), line breaks as spaces."""
    return " ".join(_clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").split())


def md_escape(text: str) -> str:
    """Text safe inside a markdown table cell: ``|`` escaped, line breaks made spaces,
    ``<``/``>``/``&`` as entities."""
    return _md_text(text.replace("\\", "\\\\").replace("|", "\\|"))


def _md_cell(column: Metric, summary: Summary | None, base: Summary | None) -> str:
    value = column.shown(summary) if summary is not None else None
    text = column.format(value)
    if value is None or base is None or summary is base:
        return text
    base_value = column.shown(base)
    if base_value is None:
        return text
    delta = format_delta(float(value), float(base_value), column.delta)
    return text if delta is None else f"{text} ({delta[0]})"


def _md_status(run: RunRecord) -> str:
    icon = {"completed": "", "failed": "❌ ", "aborted": "⚠️ ", "running": "⏳ "}.get(run.status, "")
    text = icon + run.status
    if run.summary is not None and run.summary.generator_bound:
        text += ", gen-bound"
    return text


def _md_replicas(runs: Sequence[RunRecord], fleets: Mapping[int, FleetReport]) -> list[str]:
    """The replicas of the runs behind a balancer: one row per replica (share, requests,
    errors, p50/p99 as nginx measured it, CPU per 1,000 of its requests, how it ended),
    then a line per run with its cost and the autoscaler's changes."""
    from lab.metrics import fmt_cpu, fmt_int, fmt_ms, fmt_percent

    with_fleet = [run for run in runs if run.id in fleets]
    if not with_fleet:
        return []
    lines = ["", "**Replicas**", "",
             "| run | replica | share % | requests | errors | p50 ms | p99 ms | CPU s/1k | ended as |",
             "| :-- | --: | --: | --: | --: | --: | --: | --: | :-- |"]
    notes = []
    for run in with_fleet:
        fleet = fleets[run.id]
        f = fleet.figures
        for r in f.replicas:
            cells = [f"#{run.id} {run.variant}", str(r.replica), fmt_percent(r.share, 1), fmt_int(r.requests),
                     fmt_int(r.errors), fmt_ms(r.p50_ms), fmt_ms(r.p99_ms), fmt_cpu(r.cpu_s_per_1k), r.state]
            lines.append("| " + " | ".join(md_escape(cell) for cell in cells) + " |")
        applied = sum(d.applied for d in fleet.decisions)
        bits = [f"nginx {run.settings.balancer_method or '?'}", f"replica-seconds {f.replica_seconds:,.1f}",
                f"at most {f.max_ready} ready"]
        if fleet.decisions:
            bits.append(f"{applied} scale event{'' if applied == 1 else 's'} of {len(fleet.decisions)} "
                        f"autoscaler decisions")
        if f.unrouted:
            bits.append(unrouted_text(f))
        notes.append(f"- #{run.id} {_md_text(_one_line(run.variant))}: {_md_text(', '.join(bits))}")
    return lines + [""] + notes


def to_markdown(title: str, runs: Sequence[RunRecord], results: Sequence[ThresholdResult] = (),
                fleets: Mapping[int, FleetReport] | None = None) -> str:
    """GitHub-flavoured markdown for a pull-request comment.

    Layout: a ``###`` heading (``title``); when thresholds were given, a one-line verdict
    (``✅ all 6 thresholds passed`` / ``❌ 2 of 6 thresholds failed``); ONE table with a row
    per run: ``#id variant``, status, goodput (req/s), p50/p95/p99 latency of successful
    requests (ms), error percent, target CPU-seconds per 1,000 requests and, when any run
    reports one, the cache hit percent; every figure after the first row carries its
    change against the first run in parentheses: relative (``1,234 (+412%)``) for rates,
    latencies and CPU, in percentage points (``+1.2pp``) for error and cache percents.
    For runs behind a balancer (``fleets``), a **Replicas** table (one row per replica:
    share, requests, errors, p50/p99, CPU s/1k, how it ended) and a line per run with the
    balancer's method, replica-seconds, the most replicas ready and the scale events.
    Then the threshold verdicts (✅/❌ per threshold per run, with the run's figure;
    failures first, at most ``MAX_THRESHOLD_LINES``), then notes: what the changes are
    against, the client engine and generator workers, generator-bound runs, and runs that
    did not complete, with their reason. Missing figures show as ``–``. Cells have ``|``
    escaped.

    Args:
        title: the heading (e.g. the experiment's name).
        runs: runs in table order; the first is the baseline of the changes.
        results: ``lab.analysis.thresholds.evaluate`` output; empty for no threshold section.
        fleets: the replicas of the runs behind a balancer (``lab.session.fleets_of``).
    """
    base_run = runs[0] if runs else None
    base = base_run.summary if base_run is not None else None
    columns = list(MARKDOWN_COLUMNS)
    if any(run.summary is not None and run.summary.cache_hit_ratio is not None for run in runs):
        columns.append(CACHE_HIT)

    lines = [f"### {' '.join(title.split()) or 'runs'}", ""]
    failed = [r for r in results if not r.passed]
    if results:
        verdict = (f"❌ **{len(failed)} of {len(results)} thresholds failed**" if failed
                   else f"✅ **all {len(results)} thresholds passed**")
        lines += [verdict, ""]

    headers = ["variant", "status", *(c.header for c in columns)]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| " + " | ".join([":--", ":--", *("--:" for _ in columns)]) + " |")
    for run in runs:
        cells = [f"#{run.id} {run.variant}", _md_status(run),
                 *(_md_cell(c, run.summary, base) for c in columns)]
        lines.append("| " + " | ".join(md_escape(cell) for cell in cells) + " |")
    if not runs:
        lines.append("| (no runs) | | " + " | ".join("" for _ in columns) + " |")
    lines += _md_replicas(runs, fleets or {})

    if results:
        lines += ["", "**Thresholds**", ""]
        by_id = {run.id: run for run in runs}
        ordered = failed + [r for r in results if r.passed]
        for r in ordered[:MAX_THRESHOLD_LINES]:
            run = by_id.get(r.run_id)
            variant = run.variant if run is not None else r.variant
            lines.append(f"- {'✅' if r.passed else '❌'} #{r.run_id} {_md_text(_one_line(variant))} "
                         f"`{r.threshold.expression}`: {_shown_actual(r)}")
        hidden = ordered[MAX_THRESHOLD_LINES:]
        if hidden:
            lines.append(f"- … and {len(hidden)} more ({sum(not r.passed for r in hidden)} failed)")

    notes = []
    if base_run is not None and len(runs) > 1:
        if base is not None:
            notes.append(f"changes in parentheses: against #{base_run.id} ({_one_line(base_run.variant)})")
        else:
            notes.append(f"no changes shown: the first run, #{base_run.id}, measured nothing")
    if runs:
        notes += _engine_note(runs)
    for run in runs:
        s = run.summary
        if s is not None and s.generator_bound:
            why = f": {_one_line(s.generator_bound_reason)}" if s.generator_bound_reason else ""
            notes.append(f"#{run.id} gen-bound, the load generator limited it{why}. Its figures "
                         f"describe the generator, not the target")
        if run.status != "completed":
            notes.append(f"#{run.id} {run.status}: {_one_line(run.reason or 'no reason recorded')}")
    if notes:
        lines += ["", "**Notes**", "", *(f"- {_md_text(note)}" for note in notes)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- JUnit XML


def _xml_text(text: str) -> str:
    """Text fit for an XML attribute or element (see ``_clean``)."""
    return _clean(text)


def _seconds(value: float | None) -> str:
    """A JUnit ``time``: seconds with three decimals, never negative (``0.000`` when unknown)."""
    return f"{max(value or 0.0, 0.0):.3f}"


def _prop(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, digits))
    return str(value)


def _suite_properties(run: RunRecord) -> list[tuple[str, str]]:
    """``<property>`` pairs of a run: its identity and headline figures (units in names)."""
    s = run.summary
    props = [
        ("run_id", str(run.id)),
        ("status", run.status),
        ("throughput_rps", _prop(s.throughput_rps if s else None, 3)),
        ("p95_ms", _prop(_latency(s, "p95") if s else None, 3)),
        ("error_rate", _prop(s.error_rate if s else None, 6)),
        ("target_cpu_s_per_1k", _prop(s.target_cpu_s_per_1k if s else None, 4)),
        ("client", _prop(client_of(run), 0)),
        ("generator_workers", _prop(generator_workers_of(run), 0)),
        ("generator_bound", _prop(s.generator_bound if s else None, 0)),
    ]
    if s is not None and s.cache_hit_ratio is not None:
        props.append(("cache_hit_ratio", _prop(s.cache_hit_ratio, 4)))
    return props


def _threshold_failure_text(run: RunRecord, result: ThresholdResult) -> str:
    t = result.threshold
    actual = _shown_actual(result)
    limit = result.metric.text(t.limit)
    return (f"run #{run.id} {run.experiment}/{run.variant} ({run.status}): {t.metric} was {actual}; "
            f"the threshold requires {t.metric} {t.op} {limit}")


def to_junit(suite_name: str, runs: Sequence[RunRecord], results: Sequence[ThresholdResult] = ()) -> str:
    """JUnit XML that CI systems read (Jenkins, GitLab): ``<testsuites>`` > one
    ``<testsuite>`` per run > ``<testcase>`` > ``<failure>``.

    Each run's suite is named ``experiment/variant #id``, with ``timestamp`` (its start,
    UTC, no zone), ``time`` (its wall-clock duration, s) and ``<properties>``: run_id,
    status, throughput_rps (req/s), p95_ms (ms), error_rate (0..1), target_cpu_s_per_1k,
    client, generator_workers, generator_bound and, when reported, cache_hit_ratio
    (empty value when not measured). It holds one ``<testcase classname="lab.EXPERIMENT.VARIANT"
    name="THRESHOLD" time="0.000">`` per threshold checked on that run, with
    ``<failure type="threshold" message="p95<50ms: 61.2 ms">`` when it failed. A run
    that did not complete adds a test case ``run completed`` with
    ``<failure type="run failed|aborted|running">`` carrying its reason; a run with no
    threshold results has that test case either way (passing when it completed), so
    every run shows. A generator-bound run says so in ``<system-out>``. ``errors`` is
    always 0 and ``skipped`` 0.

    Args:
        suite_name: the ``<testsuites name>`` (e.g. the experiment's name).
        runs: the runs, one suite each, in order.
        results: ``lab.analysis.thresholds.evaluate`` output.

    Returns:
        The XML document, indented, with an ``<?xml ... encoding="UTF-8"?>`` declaration
        and a final newline.
    """
    root = ET.Element("testsuites", {"name": _xml_text(suite_name)})
    total_tests = total_failures = 0
    total_time = 0.0
    for run in runs:
        suite = ET.SubElement(root, "testsuite")
        props = ET.SubElement(suite, "properties")
        for name, value in _suite_properties(run):
            ET.SubElement(props, "property", {"name": name, "value": _xml_text(value)})
        classname = _xml_text(f"lab.{run.experiment}.{run.variant}")
        tests = failures = 0
        run_results = _results_of(run, results)
        for result in run_results:
            case = ET.SubElement(suite, "testcase", {
                "classname": classname, "name": _xml_text(result.threshold.expression), "time": "0.000"})
            tests += 1
            if not result.passed:
                failures += 1
                failure = ET.SubElement(case, "failure", {
                    "message": _xml_text(result.describe()), "type": "threshold"})
                failure.text = _xml_text(_threshold_failure_text(run, result))
        if run.status != "completed" or not run_results:
            case = ET.SubElement(suite, "testcase", {
                "classname": classname, "name": "run completed", "time": _seconds(run.duration_s)})
            tests += 1
            if run.status != "completed":
                failures += 1
                reason = run.reason or "no reason recorded"
                failure = ET.SubElement(case, "failure", {
                    "message": _xml_text(f"run {run.status}: {_one_line(reason)}"),
                    "type": f"run {run.status}"})
                failure.text = _xml_text(f"run #{run.id} {run.experiment}/{run.variant} {run.status}: "
                                         f"{reason}")
        s = run.summary
        if s is not None and s.generator_bound:
            out = ET.SubElement(suite, "system-out")
            why = f": {s.generator_bound_reason}" if s.generator_bound_reason else ""
            out.text = _xml_text(f"generator-bound, the load generator limited this run{why}. Its "
                                 f"figures describe the generator, not the target")
        suite.attrib.update({
            "name": _xml_text(f"{run.experiment}/{run.variant} #{run.id}"),
            "tests": str(tests), "failures": str(failures), "errors": "0", "skipped": "0",
            "time": _seconds(run.duration_s), "timestamp": run.started_at[:19],
        })
        total_tests += tests
        total_failures += failures
        total_time += max(run.duration_s or 0.0, 0.0)
    root.attrib.update({"tests": str(total_tests), "failures": str(total_failures), "errors": "0",
                        "time": _seconds(total_time)})
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# --------------------------------------------------------------------------- lab export

SERIES_COLUMNS = (
    "run_id", "variant", "t_s", "duration_s", "requests", "ok", "errors", "dropped", "ok_rps",
    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "active_vus", "target_rate", "in_flight_mean",
    "stage",
)
"""Header of ``series_csv``, in order."""
RESOURCE_COLUMNS = (
    "run_id", "variant", "t_s", "role", "service", "pid", "cpu_percent", "cpu_seconds", "rss_bytes",
    "num_threads", "num_fds", "processes", "replica",
)
"""Header of ``resources_csv``, in order."""
TARGET_COLUMNS = ("run_id", "variant", "t_s", "name", "value")
"""Header of ``targets_csv``, in order."""
REPLICA_INTERVAL_COLUMNS = (
    "run_id", "variant", "t_s", "duration_s", "replica", "requests", "errors", "p50_ms", "p99_ms", "max_ms",
)
"""Header of ``replica_intervals_csv``, in order."""
REPLICA_COUNT_COLUMNS = ("run_id", "variant", "t_s", "desired", "ready", "starting", "draining")
"""Header of ``replica_counts_csv``, in order."""
AUTOSCALE_COLUMNS = (
    "run_id", "variant", "t_s", "current", "metric", "metric_value", "ratio", "recommended", "desired",
    "applied", "reason",
)
"""Header of ``autoscale_events_csv``, in order."""


def series_csv(runs: Sequence[RunRecord], intervals: Mapping[int, Sequence[IntervalRow]]) -> str:
    """The per-interval series of runs as CSV: one row per run per interval
    (``SERIES_COLUMNS``), runs in the order given, intervals in time order.

    ``t_s`` is the interval's start in s after the load began, ``duration_s`` its length
    (s); counts are per interval; ``ok_rps`` is successful req/s in the interval;
    latencies (ms) are of the interval's successful requests (empty when none);
    ``active_vus`` (closed model) and ``target_rate`` (open model, req/s) the load level
    at the interval's end; ``in_flight_mean`` the time-weighted mean of requests in
    flight; ``stage`` the load stage's index.

    Args:
        runs: the runs.
        intervals: each run's intervals by run id (``Store.intervals``); a run missing
            from it has no rows.
    """
    rows = []
    for run in runs:
        for iv in intervals.get(run.id, ()):
            ok_rps = iv.ok / iv.duration_s if iv.duration_s > 0 else 0.0
            rows.append([
                str(run.id), run.variant, _csv_value(iv.t_s, 3), _csv_value(iv.duration_s, 3),
                _csv_value(iv.requests), _csv_value(iv.ok), _csv_value(iv.errors), _csv_value(iv.dropped),
                _csv_value(ok_rps, 3), _csv_value(iv.p50_ms, 3), _csv_value(iv.p90_ms, 3),
                _csv_value(iv.p95_ms, 3), _csv_value(iv.p99_ms, 3), _csv_value(iv.max_ms, 3),
                _csv_value(iv.active_vus), _csv_value(iv.target_rate, 3), _csv_value(iv.in_flight_mean, 3),
                _csv_value(iv.stage),
            ])
    return _write_csv(SERIES_COLUMNS, rows)


def _service_of(row: ResourceRow) -> str | None:
    name = row.detail.get("service") if isinstance(row.detail, dict) else None
    return str(name) if name is not None else None


def resources_csv(runs: Sequence[RunRecord], resources: Mapping[int, Sequence[ResourceRow]]) -> str:
    """The resource samples of runs as CSV: one row per reading (``RESOURCE_COLUMNS``).

    ``t_s`` is s after the load began; ``role`` is target, generator, lab, system or
    service (``service`` then names it, e.g. ``redis``); ``cpu_percent`` is percent of
    one core (empty on a run's first, priming reading), ``cpu_seconds`` cumulative
    user+system CPU-seconds, ``rss_bytes`` resident memory in bytes (used physical
    memory for ``system``); ``processes`` how many processes the reading sums;
    ``replica`` the replica's index for role ``replica`` (empty otherwise; the balancer
    is role ``balancer``).

    Args:
        runs: the runs.
        resources: each run's readings by run id (``Store.resources``).
    """
    rows = []
    for run in runs:
        for r in resources.get(run.id, ()):
            rows.append([
                str(run.id), run.variant, _csv_value(r.t_s, 3), r.role, _csv_value(_service_of(r)),
                _csv_value(r.pid), _csv_value(r.cpu_percent, 2), _csv_value(r.cpu_seconds, 3),
                _csv_value(r.rss_bytes), _csv_value(r.num_threads), _csv_value(r.num_fds),
                _csv_value(r.processes), _csv_value(r.replica),
            ])
    return _write_csv(RESOURCE_COLUMNS, rows)


def targets_csv(runs: Sequence[RunRecord],
                samples: Mapping[int, Sequence[tuple[float, str, float]]]) -> str:
    """The target's gauge readings of runs as CSV, long form (``TARGET_COLUMNS``): one
    row per reading; ``t_s`` in s after the load began, ``value`` in the gauge's own unit.

    Args:
        runs: the runs.
        samples: each run's ``(t_s, name, value)`` readings by run id (``Store.target_samples``).
    """
    rows = []
    for run in runs:
        for t_s, name, value in samples.get(run.id, ()):
            rows.append([str(run.id), run.variant, _csv_value(t_s, 3), name, _csv_value(value)])
    return _write_csv(TARGET_COLUMNS, rows)


def _per_run(runs: Sequence[RunRecord], rows: Mapping[int, Sequence[_Row]],
             cells: Callable[[_Row], list[str]]) -> list[list[str]]:
    """CSV rows: ``run_id``, ``variant`` and ``cells`` of each of a run's rows, runs in order."""
    return [[str(run.id), run.variant, *cells(row)] for run in runs for row in rows.get(run.id, ())]


def replica_intervals_csv(runs: Sequence[RunRecord],
                          slices: Mapping[int, Sequence[ReplicaInterval]]) -> str:
    """What each replica served per interval, as CSV (``REPLICA_INTERVAL_COLUMNS``): one
    row per run per interval per replica that answered in it, time then replica order.

    ``t_s`` is the interval's start in s after the load began, ``duration_s`` its length;
    ``replica`` the replica's index (``-1``: requests that arrived with no replica
    ready: held by the activator, or answered 503 by nginx); ``requests`` its answers in
    the interval, errors included;
    ``errors`` statuses ≥ 500 and requests the client gave up on (nginx's 499);
    ``p50_ms``, ``p99_ms``, ``max_ms`` its response time as nginx measured it
    (``$upstream_response_time``), from the interval's HDR histogram. Over a whole run the
    replicas' requests add up to what the generator counted (see docs/replicas.md).

    Args:
        runs: the runs.
        slices: each run's rows by run id (``lab.analysis.replicas.replica_intervals`` of
            ``Store.replica_intervals``); a run without a balancer has none.
    """
    return _write_csv(REPLICA_INTERVAL_COLUMNS, _per_run(runs, slices, lambda sl: [
        _csv_value(sl.t_s, 3), _csv_value(sl.duration_s, 3), _csv_value(sl.replica),
        _csv_value(sl.requests), _csv_value(sl.errors), _csv_value(sl.p50_ms, 3),
        _csv_value(sl.p99_ms, 3), _csv_value(sl.max_ms, 3)]))


def replica_counts_csv(runs: Sequence[RunRecord], counts: Mapping[int, Sequence[ReplicaCountRow]]) -> str:
    """The replica count of runs behind a balancer as CSV (``REPLICA_COUNT_COLUMNS``): one
    row per run per interval, taken at the interval's end (``t_s``, s after the load
    began): ``desired`` (what the autoscaler, or the fixed count, asks for), ``ready``
    (in the balancer's upstream list), ``starting`` (not ready yet) and ``draining``
    (out of the list, finishing their requests).

    Args:
        runs: the runs.
        counts: each run's counts by run id (``Store.replica_counts``).
    """
    return _write_csv(REPLICA_COUNT_COLUMNS, _per_run(runs, counts, lambda c: [
        _csv_value(c.t_s, 3), _csv_value(c.desired), _csv_value(c.ready), _csv_value(c.starting),
        _csv_value(c.draining)]))


def autoscale_events_csv(runs: Sequence[RunRecord],
                         decisions: Mapping[int, Sequence[AutoscaleEventRow]]) -> str:
    """Every autoscaler decision of runs as CSV (``AUTOSCALE_COLUMNS``), time order: ``t_s``
    (s after the load began), ``current`` replicas, the ``metric`` and its mean per
    replica ``metric_value`` (empty: none could be read), ``ratio`` (value / target),
    ``recommended`` and ``desired`` replicas, ``applied`` (``true`` when the count
    changed) and the rule's ``reason``. The inputs each decision was computed from are in
    the JSON export (``autoscale_events[].inputs``).

    Args:
        runs: the runs.
        decisions: each run's decisions by run id (``Store.autoscale_events``).
    """
    return _write_csv(AUTOSCALE_COLUMNS, _per_run(runs, decisions, lambda d: [
        _csv_value(d.t_s, 3), _csv_value(d.current), d.metric, _csv_value(d.metric_value, 6),
        _csv_value(d.ratio, 6), _csv_value(d.recommended), _csv_value(d.desired),
        _csv_value(d.applied), d.reason]))


def resource_json(row: ResourceRow) -> dict[str, Any]:
    """One resource reading as a JSON-ready dict (units as in ``resources_csv``, plus
    ``detail``: per-core CPU percents and memory totals for ``system``)."""
    return {
        "t_s": row.t_s, "role": row.role, "service": _service_of(row), "pid": row.pid,
        "cpu_percent": row.cpu_percent, "cpu_seconds": row.cpu_seconds, "rss_bytes": row.rss_bytes,
        "num_threads": row.num_threads, "num_fds": row.num_fds, "processes": row.processes,
        "detail": dict(row.detail), "replica": row.replica,
    }


def export_json(runs: Sequence[RunRecord], intervals: Mapping[int, Sequence[IntervalRow]],
                resources: Mapping[int, Sequence[ResourceRow]],
                samples: Mapping[int, Sequence[tuple[float, str, float]]],
                fleets: Mapping[int, FleetReport] | None = None,
                replica_slices: Mapping[int, Sequence[ReplicaInterval]] | None = None) -> dict[str, Any]:
    """The ``lab export --format json`` document.

    Args:
        runs, intervals, resources, samples: the runs and their rows by run id.
        fleets: the replicas of the runs behind a balancer (``lab.session.fleets_of``).
        replica_slices: their traffic per interval and replica
            (``lab.analysis.replicas.replica_intervals``).

    Returns:
        ``{"runs": [{"id", "experiment", "variant", "status", "reason", "started_at",
        "intervals": [...], "resources": [...], "target_samples": [...]}]}``: intervals as
        in ``lab show --format json`` (``t_s``, ``duration_s``, counts, ``ok_rps``,
        ``p50_ms`` … ``max_ms``, ``active_vus``, ``target_rate``, ``stage``,
        ``errors_by_class``, ``in_flight_mean``), resources as ``resource_json``, target
        samples as ``{"t_s", "name", "value"}``. A run behind a balancer adds
        ``replicas`` and ``autoscale_events`` (as in ``lab show --format json``),
        ``replica_intervals`` (the columns of ``replica_intervals_csv`` but the run's)
        and ``replica_counts`` (``t_s``, ``desired``, ``ready``, ``starting``,
        ``draining``).
    """
    from lab.report.fleet import fleet_json

    out = []
    for run in runs:
        series = series_json(run, intervals.get(run.id, ()), samples.get(run.id, ()))
        entry = {
            "id": run.id, "experiment": run.experiment, "variant": run.variant, "status": run.status,
            "reason": run.reason, "started_at": run.started_at,
            "intervals": series["intervals"],
            "resources": [resource_json(r) for r in resources.get(run.id, ())],
            "target_samples": series["target_samples"],
        }
        fleet = (fleets or {}).get(run.id)
        if fleet is not None:
            doc = fleet_json(fleet)
            entry.update({
                "replicas": doc["replicas"],
                "replica_intervals": [sl.as_dict() for sl in (replica_slices or {}).get(run.id, ())],
                "replica_counts": doc["fleet"]["replica_counts"],
                "autoscale_events": doc["autoscale_events"],
            })
        out.append(entry)
    return {"runs": out}


def export_json_text(document: dict[str, Any]) -> str:
    """``export_json``'s document as indented JSON text with a final newline."""
    return dumps(document) + "\n"
