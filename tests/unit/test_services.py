"""Backing services without processes: a target asking for more cores than the machine has,
the target's stats window, the services-ready event, and the live model's gauges.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from lab.engine import RunControl, run_plan, window_stats
from lab.events import ResourceSample, ServicesReady, TargetSample
from lab.plan import plan_runs
from lab.spec import load_experiment
from lab.store import Store
from tests.conftest import REPO, write_experiment


async def test_cpus_beyond_the_machine_fail_with_a_clear_reason(tmp_path: Path) -> None:
    body = f"""
        [experiment]
        title = "too many"
        [target]
        app = "targets.testing:app"
        app_dir = "{REPO}"
        cpus = 1024
        [load]
        vus = 1
        duration = "1s"
        [[load.requests]]
        path = "/fast"
    """
    plan = plan_runs(load_experiment(write_experiment(tmp_path, body)))[0]
    outcome = await run_plan(plan, [], RunControl())
    assert outcome.status == "failed"
    assert outcome.reason == ("target.cpus = 1024 asks for more CPU cores than this machine has "
                              f"({psutil.cpu_count()})")


def test_window_stats_counters_gauges_info_and_per_request() -> None:
    start = {"requests": 100, "queries": 1000, "cache_hits": 5, "backend": "x"}
    end = {"requests": 150, "queries": 1550, "cache_hits": 9, "backend": "x",
           "gauges": {"queue_depth": 3}, "info": {"backend": "postgres"}}
    samples = [TargetSample("k", 0.5, {"queue_depth": 100.0}),
               TargetSample("k", 2.0, {"queue_depth": 2.0}),
               TargetSample("k", 3.0, {"queue_depth": 4.0})]
    out = window_stats(start, end, samples, window_start_s=2.0)
    assert out["requests"] == 50 and out["queries"] == 550 and out["cache_hits"] == 4
    assert out["per_request"] == {"queries": 11.0, "cache_hits": 0.08}
    assert out["gauges"] == {"queue_depth": {"mean": 3.0, "max": 4.0, "last": 4.0}}
    assert out["info"] == {"backend": "postgres"}
    assert out["backend"] == "x"


def test_services_ready_event_is_recorded(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as store:
        from lab.events import HostFacts, RunStarted
        from lab.store import StoreRecorder

        plan = plan_runs(load_experiment(REPO / "experiments" / "caching.toml"))[0]
        rec = StoreRecorder(store)
        rec(RunStarted("k", plan, time.time(), HostFacts(2, 1, "3", "x"), "0"))
        rec(ServicesReady("k", {"redis": "redis://127.0.0.1:1/0"}, ["postgres not started: x"]))
        rec(TargetSample("k", 1.0, {"queue_depth": 2.0}))
        row = store._query("select services from runs")[0]
        assert json.loads(row["services"]) == {"running": {"redis": "redis://127.0.0.1:1/0"},
                                               "notes": ["postgres not started: x"]}
        assert store._query("select name, value from target_samples") == [
            {"name": "queue_depth", "value": 2.0}]


def test_live_model_keeps_the_latest_gauges_and_service_cpu() -> None:
    from lab.tui.live_model import LiveBridge

    bridge = LiveBridge()
    bridge(TargetSample("k", 1.0, {"queue_depth": 3.0, "job_lag_ms": 120.5}))
    bridge(TargetSample("k", 2.0, {"queue_depth": 7.0}))
    bridge(ResourceSample("k", 2.0, "service", 42, 12.5, 1.0, 10, 2, 5, 1,
                          detail={"service": "redis"}))
    snap = bridge.snapshot
    assert snap.gauges == {"queue_depth": 7.0, "job_lag_ms": 120.5}
    assert snap.service_cpu == {"redis": 12.5}
