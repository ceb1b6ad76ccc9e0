"""Offered against achieved load: an open-model run past its target's capacity says so, with
both figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.store import Store
from tests.conftest import REPO, lab_in_process, run_lab, write_experiment

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
    show = lab_in_process("show", "2", "--db", str(db))
    assert f"{triple['achieved_rps']:.1f} of 150.0 offered (" in show.stdout, show.stdout
    table = lab_in_process("compare", "1", "2", "--db", str(db))
    assert "below offered" in table.stdout and f"run 2 below offered load: {reason}" in \
        " ".join(table.stdout.split()), table.stdout
