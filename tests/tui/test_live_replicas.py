"""Replicas live in the TUI: real short runs behind a real nginx, watched from the Live
screen (the replicas chart on the charts' time axis, the per-replica table), and the
stored run's replica and autoscaler tables in the run view."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.store import Store
from lab.topology.services import find_components
from lab.tui.app import LabApp
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.live import LiveScreen
from lab.tui.widgets.chart import TimeChart
from tests.tui.test_screens import SIZE, _text
from tests.tui.waits import settle, wait_until

pytestmark = pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")

TWO_REPLICAS = """\
[experiment]
title = "Two replicas"

[target]
app = "targets.replicas:app"
replicas = 2
env = { SLOTS = "4", SERVICE_MS = "10" }
ready_path = "/health"

[balancer]
method = "least_conn"

[load]
model = "closed"
vus = 4
duration = "3s"
timeout = "5s"

[[load.requests]]
path = "/work"
"""

# 400 req/s into one replica of 200 req/s (4 slots × 20 ms): utilization 1.0, so the
# autoscaler wants ceil(1 × 1.0 / 0.6) = 2 at its first sync.
AUTOSCALED = """\
[experiment]
title = "Autoscaled"

[target]
app = "targets.replicas:app"
env = { SLOTS = "4", SERVICE_MS = "20" }
ready_path = "/health"

[balancer]
method = "least_conn"

[autoscale]
metric = "utilization"
target = 0.6
min_replicas = 1
max_replicas = 3
sync_period = "500ms"
scale_down_window = "5s"

[load]
model = "open"
timeout = "10s"
max_in_flight = 3000
stages = [{ duration = "1s", target = 400 }, { duration = "5s", target = 400 }]

[[load.requests]]
path = "/work"
"""


def _folder(tmp_path: Path, name: str, body: str) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / f"{name}.toml").write_text(body)
    return folder


async def test_two_replicas_show_in_the_table_and_chart_and_add_up(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    app = LabApp(db, _folder(tmp_path, "two", TWO_REPLICAS), autorun="two")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen")
        live = app.screen
        assert isinstance(live, LiveScreen)
        chart = live.query_one("#chart-replicas", TimeChart)
        # While the run goes on: both replicas in the table, the chart on the time axis.
        await wait_until(pilot, lambda: sum(r.requests for r in live.snapshot.replicas.values()) > 0
                         and live._drawn_version == live.snapshot.version, "the replicas' first traffic",
                         within_s=30)
        assert chart.display and live.query_one("#replica-table").display
        # The lowest chart labels the time axis: the replicas chart, not the load chart.
        assert chart.show_x_labels and not live.query_one("#chart-level", TimeChart).show_x_labels
        await wait_until(pilot, lambda: not live.running, "the run to end", within_s=60)
        await pilot.pause()
        s = live.snapshot
        assert s.status == "completed"
        rows = s.replica_views()
        assert [r.label for r in rows] == ["0", "1"]
        text = _text(app, "#replica-table")
        lines = [line.split() for line in text.splitlines()]
        table_rows = [cells for cells in lines if cells[:1] in (["0"], ["1"])]
        shown = [float(cells[2]) for cells in table_rows]
        assert len(shown) == 2 and sum(shown) == pytest.approx(100.0, abs=0.2), text
        assert all(r.requests > 0 and r.p50_ms is not None and r.p99_ms is not None
                   and r.p50_ms <= r.p99_ms for r in rows)
        assert "Replicas (nginx least_conn)" in text
        assert [cells[3] for cells in table_rows] == [f"{r.requests:,}" for r in rows]
        assert chart.data is not None and [x.label for x in chart.data.series] == ["desired 2", "ready 2"]
        ready = [y for y in chart.data.series[1].y if y is not None]
        assert ready and max(ready) == 2
        # The same time axis as the throughput chart: seconds after the load began, up to
        # the planned length.
        throughput = live.query_one("#chart-throughput", TimeChart).data
        assert throughput is not None and chart.data.x_max == throughput.x_max
        assert all(0 < x <= chart.data.x_max for x in chart.data.series[1].x)

    # The table's requests are the stored ones, counted again from results.db.
    with Store(db, readonly=True) as store:
        (run,) = store.list_runs()
        stored: dict[int, int] = {}
        for sl in store.replica_intervals(run.id):
            stored[sl.replica] = stored.get(sl.replica, 0) + sl.requests
    assert {int(r.label): r.requests for r in rows} == {k: v for k, v in stored.items() if k >= 0}


async def test_an_autoscaled_run_shows_ready_replicas_rising(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    app = LabApp(db, _folder(tmp_path, "auto", AUTOSCALED), autorun="auto")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await wait_until(pilot, lambda: not live.running, "the run to end", within_s=90)
        await pilot.pause()
        s = live.snapshot
        assert s.status == "completed"
        assert s.ready[0] == 1 and max(s.ready) >= 2, s.ready
        assert s.scale_marks and s.scale_marks[0].desired > s.scale_marks[0].current
        chart = live.query_one("#chart-replicas", TimeChart)
        assert chart.display and chart.data is not None
        # Each applied decision is a marker on the replicas chart, named in its legend.
        marks = {x for x, _colour in chart.data.markers}
        assert {m.t_s for m in s.scale_marks} <= marks
        assert "scale" in TimeChart.legend(chart.data)
        assert len(s.replica_views()) >= 2
        assert "nginx CPU" in _text(app, "#resources")

        # The stored run, opened as History opens it: the replica table and the decisions.
        live.action_compare()
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "the run view")
        await settle(pilot, app)
        text = _text(app, "#compare-replicas")
        assert "by replica" in text and "autoscaler" in text
        with Store(db, readonly=True) as store:
            (run,) = store.list_runs()
            applied = sum(d.applied for d in store.autoscale_events(run.id))
        assert f"{applied} applied" in text
