"""``lab report``'s page in process: run status, chart units, and every point of the sweep
charts inside its frame.

The report only reads the database, so these tests render synthetic stored runs, written
through the engine's own StoreRecorder as a real run is: an experiment with two variants of 2 s
each and a 6-level sweep (made once for the module, no load).
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.events import IntervalStats, ResourceSample, RunFinished
from lab.plan import plan_runs
from lab.report.html import (
    Line,
    Mark,
    gather,
    log_ticks,
    nice_ticks,
    render_report,
    svg_chart,
)
from lab.spec import load_experiment
from lab.store import Store, StoreRecorder
from tests.conftest import REPO, write_experiment
from tests.synthetic import T0, record, record_synthetic_sweeps, summary_of, synthetic_events

EXPERIMENT = f"""
    [experiment]
    title = "HTML <report> & smoke"
    [target]
    app = "targets.testing:app"
    app_dir = "{REPO}"
    [load]
    vus = 4
    duration = "2s"
    warmup = "0s"
    [[load.requests]]
    path = "/sleep/20"
    [[variants]]
    name = "sleepy-20ms"
    [[variants]]
    name = "fast-path"
    load.requests = [{{ path = "/fast" }}]
"""

SWEEP_CURVE = (48.0, 0.01, 0.003)
"""λ, σ, κ of the synthetic sweep: what usl-demo measures with USL_SERIAL_MS = 1.0 and
USL_CROSSTALK_MS = 0.08 (N* ≈ 18)."""
"""Anything in a page that could fetch a resource."""


@pytest.fixture(scope="module")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A results database with runs 1 and 2 (two variants of 2 s: intervals, target CPU and
    RSS, the target's own figures) and runs 3–8 (a sweep of vus with its fits)."""
    work = tmp_path_factory.mktemp("report")
    db = work / "results.db"
    plans = plan_runs(load_experiment(write_experiment(work, EXPERIMENT, name="html-smoke")))
    with Store(db) as store:
        for i, (plan, rps, p95_ms) in enumerate(zip(plans, (190, 2400), (24.0, 2.5), strict=True)):
            key = f"html-{i}"
            events = synthetic_events(plan, key, rps, p95_ms, 2, T0 + 10 * i)
            # The runs' target CPU and RSS apart (the second busier and bigger), as measured,
            # so neither line hides the other in the charts.
            events = [dataclasses.replace(e, cpu_percent=e.cpu_percent * (1 + i),
                                          rss_bytes=e.rss_bytes + i * 40 * 2**20)
                      if isinstance(e, ResourceSample) and e.role == "target" else e
                      for e in events]
            recorder = StoreRecorder(store)
            for event in events:
                recorder(event)
            stats = {"requests": rps * 2, "fast_total": rps * 2 if i else 0,
                     "info": {"app": "testing"}}
            recorder(RunFinished(key, "completed", None, T0 + 10 * i + 2.5,
                                 summary_of(events, 0, 0.5 + i, 60_000_000, None), stats))
    record_synthetic_sweeps(work, db, {"default": SWEEP_CURVE})
    yield db


def test_failed_and_aborted_runs_show_their_status_and_reason(report_db: Path) -> None:
    with Store(report_db, readonly=True) as store:
        data = gather(store, [1, 2])
    failed = dataclasses.replace(data.runs[0], status="failed",
                                 reason="target exited with code 3 <during> the run")
    aborted = dataclasses.replace(data.runs[1], status="aborted", reason="stopped by the user")
    html = render_report(dataclasses.replace(data, runs=[failed, aborted]))
    assert '<span class="status bad">failed</span>' in html
    assert '<span class="status warn">aborted</span>' in html
    assert "target exited with code 3 &lt;during&gt; the run" in html
    assert "stopped by the user" in html and ">reason</th>" in html
    assert "1 sleepy-20ms (failed)" in html and "2 fast-path (aborted)" in html


def test_svg_chart_units() -> None:
    assert nice_ticks(0, 16_215) == [0, 5000, 10000, 15000, 20000]
    assert nice_ticks(0, 2.0, 6)[-1] == 2.0
    assert log_ticks(0.2, 22.5) == [0.1, 1, 10, 100]
    assert log_ticks(2, 45) == [1, 2, 5, 10, 20, 50]
    svg = svg_chart([Line([(0, 1.0), (1, None), (2, 3.0), (3, 4.0)], "#1f77b4", "a <b>")],
                    x_label="s", y_label="req/s & more", marks=[Mark(2.5, "N* <", "#d62728")])
    assert "a &lt;b&gt;" in svg and "req/s &amp; more" in svg and "N* &lt;" in svg
    assert "<b>" not in svg
    # The None breaks the line: a lone dot, then a two-point path.
    assert svg.count('<path class="line"') == 1 and svg.count("<circle") == 1
    assert "no data" in svg_chart([], x_label="s", y_label="ms")


# ------------------------------------------------------------------ chart geometry


def _plots(html: str) -> list[ET.Element]:
    """Every chart (``<svg class="plot">``, with its nested clip ``<svg>``) of a page."""
    plots = []
    for start in re.finditer(r'<svg class="plot"', html):
        depth = 0
        for tag in re.finditer(r"<svg\b|</svg>", html[start.start():]):
            depth += -1 if tag.group() == "</svg>" else 1
            if depth == 0:
                plots.append(ET.fromstring(html[start.start():start.start() + tag.end()]))
                break
    return plots


def _tag(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _outside_the_frame(plot: ET.Element) -> list[str]:
    """What a chart draws from its data (points, lines, marks) that reaches past its plot
    frame (the ``area`` rectangle), stroke width and marker radius included."""
    area = next(e for e in plot.iter() if _tag(e) == "rect" and e.get("class") == "area")
    x0, y0 = float(area.get("x", 0)), float(area.get("y", 0))
    x1, y1 = x0 + float(area.get("width", 0)), y0 + float(area.get("height", 0))

    def out(x: float, y: float, reach: float) -> bool:
        return not (x0 <= x - reach and x + reach <= x1 and y0 <= y - reach and y + reach <= y1)

    bad = []
    for e in plot.iter():
        kind = e.get("class")
        if _tag(e) == "circle" and out(float(e.get("cx", 0)), float(e.get("cy", 0)), float(e.get("r", 0))):
            bad.append(f"point at {e.get('cx')},{e.get('cy')} r={e.get('r')}")
        elif _tag(e) == "path" and kind == "line":
            nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", e.get("d", ""))]
            half = float(e.get("stroke-width", 0)) / 2
            far = [(x, y) for x, y in zip(nums[::2], nums[1::2], strict=True) if out(x, y, half)]
            if far:
                bad.append(f"line through {far[:3]}")
        elif _tag(e) == "line" and kind == "mark":
            for x, y in ((e.get("x1"), e.get("y1")), (e.get("x2"), e.get("y2"))):
                if out(float(x or 0), float(y or 0), 0):
                    bad.append(f"mark line at {x},{y}")
        elif _tag(e) == "svg" and e is not plot:
            clip = tuple(float(e.get(k, 0)) for k in ("x", "y", "width", "height"))
            if clip != (x0, y0, x1 - x0, y1 - y0):
                bad.append(f"drawing area {clip} is not the frame {(x0, y0, x1 - x0, y1 - y0)}")
    return bad


def test_every_point_of_the_sweep_charts_is_inside_the_frame(report_db: Path, tmp_path: Path) -> None:
    # The sweep of report_db ends at its last level (N* ≈ 18 within it): the last points
    # sit at the right end of the x axis. A second sweep's N* (≈ 141) lies far beyond its
    # levels (1 to 32) and beyond the 4× of them the charts show.
    far = tmp_path / "far.db"
    record_synthetic_sweeps(tmp_path, far, {"far": (48.0, 0.001, 0.00005)})
    for db, ids in ((report_db, (3,)), (far, (1,))):
        with Store(db, readonly=True) as store:
            html = render_report(gather(store, list(ids)))
        sweep_charts = _plots(html[html.index("<h2>Sweeps</h2>"):])
        assert len(sweep_charts) == 2
        for plot in sweep_charts:
            assert sum(1 for e in plot.iter() if _tag(e) == "circle") >= 6  # a dot per level
            assert _outside_the_frame(plot) == [], plot.get("aria-label")
    assert "N* ≈ 141 →" in html  # said at the frame's edge instead


def _y_ticks(plot: ET.Element) -> list[float]:
    values = []
    for e in plot.iter():
        if _tag(e) == "text" and e.get("class") == "tick" and e.get("text-anchor") == "end":
            text = (e.text or "").replace(",", "")
            values.append(float(text[:-1]) * 1000 if text.endswith("k") else float(text))
    return values


@pytest.mark.parametrize(("fast", "log"), [
    # A ramp to 15,000 req/s (6,780 on average: 51× the slow run) whose per-second median
    # (2,600) is under 20× the slow run's: linear, the slow run was a flat line on 0.
    ((500, 1500, 2600, 14_300, 15_000), True),
    ((200, 210, 190, 200, 205), False),  # 1.5× apart: a linear axis shows both
])
def test_throughput_chart_turns_log_when_a_run_would_be_flat_on_zero(
        tmp_path: Path, fast: tuple[int, ...], log: bool) -> None:
    slow = 133
    db = tmp_path / "r.db"
    plans = plan_runs(load_experiment(write_experiment(tmp_path, EXPERIMENT, name="scale")))
    with Store(db) as store:
        for i, (plan, series) in enumerate(zip(plans, ((slow,) * 5, fast), strict=True)):
            events = [dataclasses.replace(e, ok=series[int(e.t_s)], requests=series[int(e.t_s)])
                      if isinstance(e, IntervalStats) else e
                      for e in synthetic_events(plan, f"scale-{i}", 100, 5.0, 5, T0 + 10 * i)]
            record(store, events, "completed", None, T0 + 10 * i + 6,
                   summary_of(events, 0, 0.5, 60_000_000, None))
        html = render_report(gather(store, [1, 2]))
    throughput = _plots(html)[0]
    assert "ok req/s" in throughput.get("aria-label", "")
    label = "".join(e.text or "" for e in throughput.iter() if e.get("class") == "label")
    assert ("(log scale)" in label) == log
    # Either way the axis reads the slow run's magnitude: a labelled tick at or below it,
    # above 0 (a linear axis to 15,000 had its first at 5,000).
    assert any(0 < t <= slow for t in _y_ticks(throughput)), _y_ticks(throughput)
    assert _outside_the_frame(throughput) == []
