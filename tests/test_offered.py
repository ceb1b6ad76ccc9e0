"""Offered against achieved load: a run that did not get the load it asked for says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.analysis.offered import offered_load
from lab.store import Store
from tests.conftest import REPO, run_lab, write_experiment
from tests.test_stages import _iv

# One slot held 20 ms per request: a capacity of 50 req/s, known in advance. Arrivals that
# find 5 waiting are answered 503 at once (no backlog to drain after the run).
SLOW_TARGET = f"""
    [experiment]
    title = "offered"
    [target]
    app = "targets.shedding:app"
    app_dir = "{REPO}"
    env = {{ SLOTS = "1", SERVICE_MS = "20", MAX_QUEUE = "5" }}
    [load]
    model = "open"
    rate = 25
    duration = "3s"
    warmup = "1s"
    [[load.requests]]
    path = "/work"
    [[variants]]
    name = "half"
    load.rate = 25
    [[variants]]
    name = "triple"
    load.rate = 150
"""


def test_an_open_model_run_past_the_targets_capacity_is_flagged_with_both_figures(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    path = write_experiment(tmp_path, SLOW_TARGET)
    res = run_lab("run", str(path), "--db", str(db), "--format", "json", "--progress")
    assert res.returncode == 0, res.stderr
    runs = {r["variant"]: r for r in json.loads(res.stdout)["runs"]}
    half, triple = runs["half"]["summary"], runs["triple"]["summary"]
    # At half its capacity the target serves what arrives.
    assert half["offered_rps"] == pytest.approx(25) and not half["load_not_achieved"], half
    assert half["achieved_rps"] == pytest.approx(25, rel=0.1)
    # At three times its capacity it serves at most 50 req/s of the 150 offered.
    assert triple["offered_rps"] == pytest.approx(150) and triple["load_not_achieved"], triple
    assert triple["achieved_rps"] <= 55, triple
    reason = triple["load_not_achieved_reason"]
    assert f"{triple['achieved_rps']:.1f} of 150.0 req/s" in reason, reason
    assert "warning: offered load not achieved: served" in res.stderr
    assert res.stderr.count("offered load not achieved") == 1  # the half run is not flagged
    # The same from results.db, and in the table's caption.
    store = Store(db, readonly=True)
    try:
        stored = {run.variant: run.summary for run in store.list_runs()}
    finally:
        store.close()
    assert stored["triple"] is not None and stored["triple"].load_not_achieved
    assert stored["half"] is not None and not stored["half"].load_not_achieved
    show = run_lab("show", "2", "--db", str(db))
    assert f"{triple['achieved_rps']:.1f} of 150.0 offered (" in show.stdout, show.stdout
    table = run_lab("compare", "1", "2", "--db", str(db))
    assert "below offered" in table.stdout and f"run 2 below offered load: {reason}" in \
        " ".join(table.stdout.split()), table.stdout


def _closed(max_rps: float | None, think_time: float = 0.0, vus: int = 2) -> dict[str, Any]:
    return {"model": "closed", "vus": vus, "duration": 4.0, "warmup": 0.0, "stages": [],
            "max_rps": max_rps, "think_time": think_time}


def test_a_paced_closed_model_run_whose_vus_cannot_keep_the_pace_is_flagged() -> None:
    # 2 VUs whose answers take 50 ms reach 40 req/s: paced at 200 they fall short, and
    # each VU's wait for its answer hides what clients arriving at 200/s would see.
    intervals = [_iv(float(t), 40) for t in range(4)]
    short = offered_load(intervals, _closed(200), 0.0)
    assert short is not None and short.not_achieved
    assert (short.offered_rps, short.achieved_rps) == (200, 40)
    assert "coordinated omission" in (short.reason or "")
    kept = offered_load(intervals, _closed(40), 0.0)
    assert kept is not None and not kept.not_achieved and kept.reason is None


def test_a_closed_model_without_an_intended_rate_is_never_flagged() -> None:
    intervals = [_iv(float(t), 8) for t in range(4)]
    assert offered_load(intervals, _closed(None, think_time=0.2), 0.0) is None
    # 2 VUs thinking 1 s send at most 2 req/s even at zero latency: a max_rps of 50 is a
    # cap out of reach, not a pace.
    assert offered_load(intervals, _closed(50, think_time=1.0), 0.0) is None


def test_the_drain_after_the_schedule_is_not_compared() -> None:
    # 100 req/s offered for 3 s against a target serving 50: the backlog answered in the
    # 3 s drain after the end would read as 100 % achieved over the 6 s.
    load = {"model": "open", "rate": 100, "duration": 3.0, "warmup": 0.0, "stages": []}
    intervals = [_iv(0.0, 50), _iv(1.0, 50), _iv(2.0, 200, duration_s=4.0)]
    got = offered_load(intervals, load, 0.0)
    assert got is not None and got.seconds == 2 and got.offered_rps == 100 and got.achieved_rps == 50
