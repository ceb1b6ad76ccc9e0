"""Per-stage figures of a staged run and the Little's law check, with a real target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_in_process, run_lab, write_experiment

STAGED = f"""
    [experiment]
    title = "staged"
    [target]
    app = "targets.testing:app"
    app_dir = "{REPO}"
    [load]
    model = "open"
    rate = 50
    stages = [{{ duration = "2s", target = 50 }}, {{ duration = "2s", target = 150 }}]
    [[load.requests]]
    path = "/sleep/20"
"""


STEP = f"""
    [experiment]
    title = "step"
    [target]
    app = "targets.testing:app"
    app_dir = "{REPO}"
    [load]
    model = "open"
    rate = 10
    timeout = "5s"
    stages = [{{ duration = "2s", target = 10 }}, {{ duration = "10ms", target = 100 }},
              {{ duration = "2s", target = 100 }}]
    [[load.requests]]
    path = "/sleep/500"
"""


def test_staged_run_reports_each_stage_with_littles_law(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    path = write_experiment(tmp_path, STAGED)
    res = run_lab("run", str(path), "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    stages = json.loads(res.stdout)["runs"][0]["stages"]
    assert [s["stage"] for s in stages] == [0, 1]
    first, second = stages
    # Stage 1 holds 50 req/s; stage 2 ramps 50 → 150: offered is the schedule's mean, 100
    # (the rate at each interval's end gave 125).
    # The second row also holds the few ms of drain after the schedule, when nothing is
    # scheduled: its 200 arrivals over the 2 s + drain it measures.
    assert first["offered"] == 50
    assert second["offered"] == pytest.approx(200 / (2 + second["drain_s"]), rel=1e-3)  # both rounded
    assert (first["intervals"], second["intervals"], first["note"], second["note"]) == (2, 2, None, None)
    # The target keeps up (each request sleeps 20 ms; a busy machine hardly changes that):
    # each stage serves what it was offered (measured within 1 %).
    for st in stages:
        assert st["throughput_rps"] == pytest.approx(st["offered"], rel=0.2), st
    for st in stages:
        # /sleep/20 answers after 20 ms: about X·W = 1–2 requests are in flight, as the
        # target's own in_flight gauge shows.
        assert st["in_flight_target"] is not None and st["in_flight_little"] > 0
        assert st["little_ok"], st
    table = lab_in_process("show", "1", "--db", str(db))
    assert table.returncode == 0, table.stderr
    assert "by stage" in table.stdout and "X·W" in table.stdout


def test_the_targets_in_flight_of_a_stage_is_read_in_the_seconds_the_generator_measured(
        tmp_path: Path) -> None:
    # 10 req/s of a 500 ms answer, then 100: 5 in flight, then 50. The target's gauge read
    # at the end of the first stage (5) belongs to the first stage, not to the second.
    res = run_lab("run", str(write_experiment(tmp_path, STEP)), "--db", str(tmp_path / "r.db"),
                  "--format", "json")
    assert res.returncode == 0, res.stderr
    stages = json.loads(res.stdout)["runs"][0]["stages"]
    low, high = stages[0], stages[2]
    assert (low["start_s"], low["end_s"], high["start_s"]) == (0, 2, 2), stages
    for st, within in ((low, 0.4), (high, 0.25)):
        assert st["in_flight_target"] == pytest.approx(st["in_flight_measured"], rel=within), st
