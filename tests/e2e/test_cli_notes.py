"""Small things a user noticed: empty listings say so, a comparison across experiments
says so, and ``lab run NAME`` finds experiments beyond ./experiments and says where it
looked.

Real ``python -m lab`` subprocesses on real SQLite files; no load is generated.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.plan import plan_runs
from lab.spec import load_experiment
from lab.store import Store
from tests.conftest import lab_in_process, one_line_error, run_lab, write_experiment
from tests.synthetic import ONE_SECOND as BASE
from tests.synthetic import T0, record, summary_of, synthetic_events

BROKEN = BASE.replace("vus = 1", "vus = -3")
"""Found, then refused by the spec check: shows which file was found, and starts nothing."""


def _db_with(tmp_path: Path, experiments: list[str]) -> Path:
    """A results.db with one synthetic run per name (ids 1, 2, ... in order)."""
    db = tmp_path / "results.db"
    with Store(db) as store:
        for i, name in enumerate(experiments):
            plan = plan_runs(load_experiment(write_experiment(tmp_path, BASE, name)))[0]
            events = synthetic_events(plan, f"run{i}", 500 + 100 * i, 3.0, 3, T0 + 60 * i)
            record(store, events, "completed", None, T0 + 60 * i + 4,
                   summary_of(events, 0, 0.5, 50_000_000, None))
    return db


def test_empty_listings_say_so(tmp_path: Path) -> None:
    db = _db_with(tmp_path, ["alpha", "beta"])
    res = lab_in_process("runs", "--experiment", "nosuch", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"no runs of experiment 'nosuch' in {db}; stored experiments: alpha, beta\n"
    res = lab_in_process("runs", "--experiment", "nosuch", "--db", str(db), "--format", "json")
    assert json.loads(res.stdout) == {"runs": []}
    res = lab_in_process("sweep", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"no sweeps in {db}")
    assert len(res.stdout.splitlines()) == 1


def test_compare_across_experiments_says_so_above_the_table(tmp_path: Path) -> None:
    db = _db_with(tmp_path, ["alpha", "alpha", "beta"])
    res = lab_in_process("compare", "1", "2", "3", "--db", str(db))
    assert res.returncode == 0, res.stderr
    first, *rest = res.stdout.splitlines()
    assert first == ("note: these runs come from different experiments (alpha: runs 1, 2; beta: run 3): "
                     "their targets and loads may differ, so a change is not the variant's alone")
    assert any(line.lstrip().startswith("3 default") for line in rest)
    same = lab_in_process("compare", "1", "2", "--db", str(db))
    assert "note:" not in same.stdout


def test_run_finds_experiments_beside_the_database_and_in_lab_experiments(tmp_path: Path) -> None:
    home = tmp_path / "lab-home"
    (home / "experiments").mkdir(parents=True)
    write_experiment(home / "experiments", BROKEN, "beside")
    shared = tmp_path / "shared"
    shared.mkdir()
    write_experiment(shared, BROKEN, "shared-one")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = home / "results.db"

    res = run_lab("run", "beside", "--db", str(db), cwd=elsewhere)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{home / 'experiments' / 'beside.toml'}:") and "load.vus" in line, line

    res = run_lab("run", "shared-one", "--db", str(db), cwd=elsewhere, env={"LAB_EXPERIMENTS": str(shared)})
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{shared / 'shared-one.toml'}:"), line

    res = run_lab("run", "nosuch", "--db", str(db), cwd=elsewhere, env={"LAB_EXPERIMENTS": str(shared)})
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line == (f"nosuch: no such experiment file (looked in experiments/, {shared}/ ($LAB_EXPERIMENTS), "
                    f"{home / 'experiments'}/ and {home}/ (beside {db})); "
                    "known experiments: beside, shared-one")
    assert not db.exists()
