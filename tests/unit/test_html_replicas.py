"""``lab report`` of runs behind a balancer: the replicas table, the autoscaler's
decisions, and the replicas chart on the throughput and latency charts' time axis with
the applied decisions marked on all three.

The runs are synthetic (``tests.synthetic_fleet``), written through the engine's own
StoreRecorder as a real run is; a real run is reported in tests/e2e/test_replica_outputs.py.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.report.html import Line, Mark, gather, render_report, run_color, svg_chart
from lab.report.html.charts import MARK_CHAR_W, integer_ticks
from lab.store import Store
from tests.synthetic_fleet import record_fleet_and_plain, replica_ms
from tests.unit.test_html_report import _plots, _tag


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1: the synthetic fleet (2 → 3 → 2 replicas); run 2: a plain run without a balancer."""
    return record_fleet_and_plain(tmp_path_factory.mktemp("fleet"))


def _page(db: Path, *ids: int) -> str:
    with Store(db, readonly=True) as store:
        return render_report(gather(store, list(ids)))


def _chart(html: str, caption: str) -> ET.Element:
    """The ``<svg class="plot">`` of the figure titled ``caption``."""
    start = html.index(f"<figcaption>{caption}</figcaption>")
    return _plots(html[start:])[0]


def _x_ticks(plot: ET.Element) -> dict[str, float]:
    """The x axis's tick labels → their x in px."""
    return {e.text or "": float(e.get("x", 0)) for e in plot.iter()
            if _tag(e) == "text" and e.get("class") == "tick" and e.get("text-anchor") == "middle"}


def _y_ticks(plot: ET.Element) -> dict[float, float]:
    """The y axis's tick values → their y in px (the label sits 4 px below the line)."""
    return {float(e.text or "0"): float(e.get("y", 0)) - 4 for e in plot.iter()
            if _tag(e) == "text" and e.get("class") == "tick" and e.get("text-anchor") == "end"}


def _marks(plot: ET.Element) -> list[tuple[float, str]]:
    """The vertical marks of a chart: their x in px and their colour."""
    return [(float(e.get("x1", 0)), e.get("stroke", "")) for e in plot.iter()
            if _tag(e) == "line" and e.get("class") == "mark" and e.get("x1") == e.get("x2")]


def _path_points(plot: ET.Element, title_end: str) -> list[tuple[float, float]]:
    """The points of the line whose tooltip ends with ``title_end``, in data units (read
    back through the chart's own tick labels)."""
    paths = [e for e in plot.iter() if _tag(e) == "path" and e.get("class") == "line"
             and any(_tag(t) == "title" and (t.text or "").endswith(title_end) for t in e)]
    assert len(paths) == 1, title_end
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", paths[0].get("d", ""))]
    xt, yt = _x_ticks(plot), _y_ticks(plot)
    (x0, px0), (x1, px1) = sorted((float(k), v) for k, v in xt.items())[:2]
    (y0, py0), (y1, py1) = sorted(yt.items())[:2]
    return [(round(x0 + (x - px0) / (px1 - px0) * (x1 - x0), 2),
             round(y0 + (y - py0) / (py1 - py0) * (y1 - y0), 2))
            for x, y in zip(nums[::2], nums[1::2], strict=True)]


def test_the_report_shows_each_replica_and_the_decisions_that_changed_the_count(fleet_db: Path) -> None:
    html = _page(fleet_db, 1)
    section = html[html.index("<h2>Replicas</h2>"):html.index("<h2>Over time</h2>")]
    assert "run 1 (default) by replica" in section and "run 1 (default) autoscaler" in section
    assert "balancer: nginx least_conn" in section
    assert "3 requests arrived with no replica ready (p50 " in section
    rows = re.findall(r"<tr class=\"\">(.*?)</tr>", section)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    by_replica = {c[0]: c for c in cells if len(c) == 12}
    assert sorted(by_replica) == ["0", "1", "2"]
    for r in (0, 1, 2):
        # p50 and p99 as the balancer measured each replica (every answer takes replica_ms).
        assert by_replica[str(r)][4] == f"{replica_ms(r):.1f}"
        assert by_replica[str(r)][5] == f"{replica_ms(r):.1f}"
    assert by_replica["1"][3] == "6" and by_replica["2"][11] == "stopped"
    # Only the decisions that changed the count are listed; the others are counted.
    decisions = [c for c in cells if len(c) == 7]
    assert [(d[0], d[1], d[5]) for d in decisions] == [("1.0", "2", "3 ✓"), ("4.0", "3", "2 ✓")]
    assert "4 decisions, 2 applied; 2 kept the count and are not shown" in section


def test_the_replicas_chart_shares_the_time_axis_and_marks_the_applied_decisions(fleet_db: Path) -> None:
    html = _page(fleet_db, 1)
    assert html.count('<svg class="plot"') == 5
    charts = [_chart(html, title) for title in ("Throughput", "Latency", "Replicas")]
    ticks = _x_ticks(charts[0])
    for plot in charts:
        # The same seconds at the same px in all three charts.
        assert _x_ticks(plot) == ticks
        marks = _marks(plot)
        assert [m[1] for m in marks] == [run_color(0)] * 2
        assert [x for x, _c in marks] == pytest.approx([ticks["1"], ticks["4"]], abs=0.11)
        labels = [e.text for e in plot.iter() if e.get("class") == "mark-label"]
        assert labels == ["↑3", "↓2"]
    replicas = charts[2]
    assert all(v == int(v) for v in _y_ticks(replicas)), _y_ticks(replicas)
    # The counts as sampled at the end of each interval, held until the next sample (a
    # change is drawn at the sample that saw it, never before): 2 ready at the start, 3
    # seen at 2 s (replica 2 was ready at 1.6 s), 2 seen at 5 s (it ended at 4.5 s);
    # desired 3 from the sample after the decision at 1.0 s to the one after 4.0 s.
    ready = _path_points(replicas, "ready")
    assert ready == [(0, 2), (2, 2), (2, 3), (5, 3), (5, 2), (6, 2)]
    desired = _path_points(replicas, "desired")
    assert desired == [(0, 2), (2, 2), (2, 3), (5, 3), (5, 2), (6, 2)]


def test_a_run_without_a_balancer_adds_nothing_to_the_report(fleet_db: Path) -> None:
    plain = _page(fleet_db, 2)
    assert "Replicas" not in plain and 'class="mark-label"' not in plain and "autoscaler" not in plain
    assert plain.count('<svg class="plot"') == 4
    # Beside a run behind a balancer: the replicas chart has the balanced run's lines only.
    both = _page(fleet_db, 2, 1)
    replicas = _chart(both, "Replicas")
    strokes = {e.get("stroke") for e in replicas.iter() if _tag(e) == "path"}
    assert strokes == {run_color(1)}
    section = both[both.index("<h2>Replicas</h2>"):both.index("<h2>Over time</h2>")]
    assert "run 1 (default) by replica" in section and "run 2" not in section


def test_overlapping_mark_labels_stack_and_counts_get_whole_ticks() -> None:
    assert integer_ticks(0, 1) == [0, 1]
    assert integer_ticks(0, 4) == [0, 1, 2, 3, 4]
    assert all(t == int(t) for t in integer_ticks(0, 12))
    marks = [Mark(t, f"↑{n}", "#1f77b4", title=f"to {n}") for n, t in enumerate((1.0, 1.1, 1.2, 5.0), 2)]
    svg = ET.fromstring(svg_chart([Line([(0, 1.0), (6, 2.0)], "#000")], x_label="s", y_label="n",
                                  x_range=(0, 6), marks=marks))
    labels = [(float(e.get("x", 0)), float(e.get("y", 0)), e.get("text-anchor"), e.text or "")
              for e in svg.iter() if e.get("class") == "mark-label"]
    assert [text for *_rest, text in labels] == ["↑2", "↑3", "↑4", "↑5"]
    spans = []
    for x, y, anchor, text in labels:
        w = len(text) * MARK_CHAR_W
        spans.append((x - w if anchor == "end" else x, x if anchor == "end" else x + w, y))
    for i, (a0, a1, ay) in enumerate(spans):
        for b0, b1, by in spans[i + 1:]:
            assert ay != by or a1 < b0 or b1 < a0, (spans[i], (b0, b1, by))
    # Close marks go up a row; a mark far away keeps the bottom row.
    assert [y for _x, y, *_ in labels][:3] == sorted([y for _x, y, *_ in labels][:3], reverse=True)
    assert labels[3][1] == labels[0][1]
    assert sum(1 for e in svg.iter() if _tag(e) == "title" and (e.text or "").startswith("to ")) == 8

