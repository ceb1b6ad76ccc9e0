"""Per-stage figures of a staged run and the Little's law check, with a real target."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_lab, write_experiment

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


def test_staged_run_reports_each_stage_with_littles_law(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    path = write_experiment(tmp_path, STAGED)
    res = run_lab("run", str(path), "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    stages = json.loads(res.stdout)["runs"][0]["stages"]
    assert [s["stage"] for s in stages] == [0, 1]
    first, second = stages
    # Stage 1 holds 50 req/s; stage 2 ramps 50 → 150 (mean ~100).
    assert 40 <= first["throughput_rps"] <= 60, first
    assert 75 <= second["throughput_rps"] <= 125, second
    for st in stages:
        # /sleep/20 answers after 20 ms: about X·W = 1–2 requests are in flight, as the
        # target's own in_flight gauge shows.
        assert st["in_flight_target"] is not None and st["in_flight_little"] > 0
        assert st["little_ok"], st
    table = run_lab("show", "1", "--db", str(db))
    assert table.returncode == 0, table.stderr
    assert "by stage" in table.stdout and "X·W" in table.stdout
