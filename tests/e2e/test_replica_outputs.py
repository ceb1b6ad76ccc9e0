"""A real run behind a real nginx, through every output that reads it back: the HTML
report (the Replicas section, the replicas chart with the autoscaler's decisions marked,
checked in headless Chromium), ``lab export`` (the replicas' series add up to what the
generator counted) and ``lab compare --format markdown|csv``.

One short run (2 replicas of 4 slots × 20 ms, 400 req/s for 3 s, an autoscaler allowed
one more) is made once for the module. Skipped without nginx.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from lab.report.html import PLOT_BG, run_color
from lab.store import Store
from lab.topology.services import find_components
from tests.conftest import lab_in_process, run_lab, write_experiment
from tests.e2e.html_shot import count_color, plot_bands, read_png, screenshot
from tests.e2e.test_html_report import _assert_self_contained, _chromium_or_skip, _no_browser_left

pytestmark = pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")

TWO_REPLICAS = """
[experiment]
title = "two replicas"
[target]
app = "targets.replicas:app"
env = { SLOTS = "4", SERVICE_MS = "20" }
replicas = 2
[balancer]
method = "least_conn"
[autoscale]
metric = "utilization"
target = 0.6
min_replicas = 2
max_replicas = 3
sync_period = "500ms"
[load]
model = "open"
rate = 400
duration = "3s"
timeout = "10s"
max_in_flight = 3000
[[load.requests]]
path = "/work"
"""
"""400 req/s into two replicas of 200 req/s each (4 slots × 20 ms): utilization near 1,
so the autoscaler (target 0.6) adds the third replica it may."""


@pytest.fixture(scope="module")
def replica_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("replica-outputs")
    db = work / "results.db"
    res = run_lab("run", str(write_experiment(work, TWO_REPLICAS, name="two-replicas")), "--db", str(db))
    assert res.returncode == 0, res.stderr
    return db


def test_the_report_of_a_real_replica_run_draws_its_replicas(replica_db: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    res = lab_in_process("report", "1", "-o", str(page), "--db", str(replica_db))
    assert res.returncode == 0, res.stderr
    html = page.read_text(encoding="utf-8")
    _assert_self_contained(html)
    with Store(replica_db, readonly=True) as store:
        replicas = store.replicas(1)
        changes = [d for d in store.autoscale_events(1) if d.applied and d.desired != d.current]
    assert "<h2>Replicas</h2>" in html and "run 1 (default) by replica" in html
    assert len(replicas) >= 2
    assert changes, "400 req/s into 2 replicas of 200 req/s: the autoscaler should scale up"
    assert html.count('<svg class="plot"') == 5
    replicas_chart = html[html.index("<figcaption>Replicas</figcaption>"):]
    replicas_chart = replicas_chart[:replicas_chart.index("</figure>")]
    # One dashed vertical per decision that changed the count, labelled with the new count.
    assert replicas_chart.count('<line class="mark"') == len(changes)
    labels = re.findall(r'class="mark-label"[^>]*>([^<]*)<', replicas_chart)
    shown = [f"{'↑' if d.desired > d.current else '↓'}{d.desired}" for d in changes]
    assert set(labels) <= set(shown) and labels, (labels, shown)

    _chromium_or_skip()
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shot = tmp_path / "report.png"
    screenshot(page, shot, 1200, 3400, timeout=45, profile_parent=profiles)
    _no_browser_left(profiles)
    pixels = read_png(shot)
    bands = plot_bands(pixels, PLOT_BG)
    # Throughput and latency, replicas and target CPU, target RSS.
    assert len(bands) == 3, f"expected 3 rows of charts (5 charts), found plot areas at rows {bands}"
    top, bottom = bands[1]
    # The replicas chart (left of the second row): the ready and desired steps cross the
    # whole plot (~520 px wide; at least one row of a 2.5 px line keeps its exact colour)
    # in the run's colour, plus the decisions' marks.
    drawn = count_color(pixels[top:bottom, :600], run_color(0))
    assert drawn > 400, f"replicas chart: {drawn} px of {run_color(0)}"


def test_export_of_a_real_replica_run_adds_up(replica_db: Path) -> None:
    def export(*args: str) -> list[dict[str, str]]:
        res = lab_in_process("export", "1", *args, "--db", str(replica_db))
        assert res.returncode == 0, res.stderr
        return list(csv.DictReader(io.StringIO(res.stdout)))

    series = export()
    slices = export("--what", "replica_intervals")
    counts = export("--what", "replica_counts")
    resources = export("--what", "resources")
    # Over the whole run the replicas (and nginx's own 503s) answered what the generator counted.
    assert sum(int(r["requests"]) for r in slices) == sum(int(r["requests"]) for r in series)
    for r in slices:
        if int(r["requests"]) > int(r["errors"]):
            assert 0 < float(r["p50_ms"]) <= float(r["p99_ms"]) <= float(r["max_ms"])
    with Store(replica_db, readonly=True) as store:
        indexes = {str(r.replica) for r in store.replicas(1)}
        stored_counts = store.replica_counts(1)
    assert {r["replica"] for r in slices} - {"-1"} <= indexes
    assert [(float(r["t_s"]), int(r["ready"]), int(r["desired"])) for r in counts] == \
        [(c.t_s, c.ready, c.desired) for c in stored_counts]
    assert {r["replica"] for r in resources if r["role"] == "replica"} == indexes
    assert all(r["replica"] == "" for r in resources if r["role"] != "replica")


def test_compare_markdown_and_csv_of_a_real_replica_run(replica_db: Path) -> None:
    res = lab_in_process("compare", "1", "--format", "markdown", "--db", str(replica_db))
    assert res.returncode == 0, res.stderr
    assert "**Replicas**" in res.stdout and "- #1 default: nginx least_conn, replica-seconds" in res.stdout
    res = lab_in_process("compare", "1", "--format", "csv", "--db", str(replica_db))
    assert res.returncode == 0, res.stderr
    row = next(csv.DictReader(io.StringIO(res.stdout)))
    assert int(row["max_ready"]) >= 2 and float(row["replica_seconds"]) > 0
