"""The Live screen's replica model: what the bridge folds out of the engine's replica
events, checked against the same events counted again (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.events import ReplicaChanged, ReplicaTraffic
from lab.load.histogram import merged
from lab.plan import plan_runs
from lab.spec import load_experiment
from lab.tui.live_model import LiveBridge
from tests.synthetic import T0, synthetic_events
from tests.tui.fleet_events import FLEET_TOML, fleet_events


def _bridge(tmp_path: Path) -> tuple[LiveBridge, list[object]]:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET_TOML)
    (plan,) = plan_runs(load_experiment(path))
    bridge = LiveBridge()
    events = [*synthetic_events(plan, "k", 600, 20.0, 12, T0), *fleet_events("k", 12)]
    for event in events:
        bridge(event)  # type: ignore[arg-type]
    return bridge, events


def test_each_replica_row_is_its_traffic_counted_again(tmp_path: Path) -> None:
    bridge, events = _bridge(tmp_path)
    s = bridge.snapshot
    assert s.balancer == "least_conn" and s.autoscaled
    traffic = [e for e in events if isinstance(e, ReplicaTraffic)]
    rows = {r.label: r for r in s.replica_views()}
    assert list(rows) == ["0", "1", "2"]
    served = sum(e.requests for e in traffic if e.replica >= 0)
    for index in (0, 1, 2):
        mine = [e for e in traffic if e.replica == index]
        row = rows[str(index)]
        assert row.requests == sum(e.requests for e in mine)
        assert row.share == pytest.approx(row.requests / served)
        hist = merged([e.histogram for e in mine])
        assert (row.p50_ms, row.p99_ms) == (hist.percentile_ms(50), hist.percentile_ms(99))
    assert sum(r.share or 0 for r in rows.values()) == pytest.approx(1.0)
    # nginx's own 503s are not a replica's share; they are counted apart.
    assert s.unrouted == 5
    # A replica that has ended shows how, and no CPU (a process that is gone is not idle).
    assert rows["1"].state == "stopped" and rows["1"].cpu_percent is None
    assert rows["0"].cpu_percent == 30.0 and rows["2"].cpu_percent == 50.0
    assert s.balancer_cpu == 4.0


def test_ready_desired_and_the_applied_decisions(tmp_path: Path) -> None:
    bridge, _events = _bridge(tmp_path)
    s = bridge.snapshot
    assert s.replica_t == [float(k + 1) for k in range(12)]
    assert s.ready[0] == 2 and max(s.ready) == 3 and s.desired[4] == 3
    assert s.decisions == 12
    assert [(m.t_s, m.current, m.desired) for m in s.scale_marks] == [(4.0, 2, 3), (9.0, 3, 2)]


def test_many_ended_replicas_share_one_row_and_the_shares_still_add_up(tmp_path: Path) -> None:
    bridge, _events = _bridge(tmp_path)
    s = bridge.snapshot
    for index in range(3, 12):
        bridge(ReplicaChanged("k", index, None, f"127.0.0.1:{42000 + index}", "starting", 1.0, None, None))
        bridge(ReplicaTraffic("k", 2.0, 1.0, index, 10 * index, 0, b""))
        bridge(ReplicaChanged("k", index, None, f"127.0.0.1:{42000 + index}", "stopped", 1.0, 1.5, 3.0))
    full = s.replica_views()
    short = s.replica_views(max_rows=6)
    assert len(full) == 12
    assert [r.label for r in short] == ["0", "2", "×10"]  # 1 and 3..11 have ended
    ended = short[-1]
    assert ended.state == "ended" and ended.cpu_percent is None
    assert ended.requests == sum(r.requests for r in full if r.label not in ("0", "2"))
    assert sum(r.share or 0 for r in short) == pytest.approx(1.0)
    assert ended.p50_ms is not None  # replica 1's histograms, merged


def test_a_run_without_a_balancer_has_no_replicas(tmp_path: Path) -> None:
    from tests.tui.conftest import caching_plans

    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "caching.toml").write_text((Path(__file__).parent / "fixtures" / "caching.toml").read_text())
    plan = caching_plans(folder)[0]
    bridge = LiveBridge()
    for event in synthetic_events(plan, "k", 600, 20.0, 5, T0):
        bridge(event)
    assert bridge.snapshot.balancer is None and bridge.snapshot.replica_views() == []
