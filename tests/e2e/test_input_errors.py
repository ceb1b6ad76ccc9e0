"""Bad input through the real entry point (``python -m lab``): one line, exit code 2,
nothing stored; and ``lab doctor`` on the results database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.errors import ExitCode
from lab.store import SCHEMA_VERSION
from tests.conftest import run_lab, write_experiment
from tests.synthetic import ONE_SECOND as BASE
from tests.unit.test_input_errors import MAX_ID, Lab, Result, lab, stored  # noqa: F401 (fixtures)

# --------------------------------------------------------------------- 12a: lab doctor --db


def _doctor_db(res: Result) -> dict[str, str]:
    assert res.code == 0, res.err
    return next(c for c in json.loads(res.out)["checks"] if c["name"] == "results database")


def test_a_huge_id_through_the_real_entry_point(stored: Path) -> None:
    res = run_lab("show", "99999999999999999999", "--db", str(stored))
    assert res.returncode == ExitCode.BAD_INPUT and "Traceback" not in res.stderr
    assert res.stderr.strip() == (f"lab show: Invalid value for 'RUN_ID': run id must be between 1 "
                                  f"and {MAX_ID}, got 99999999999999999999 (see 'lab show --help')")


def test_through_the_real_entry_point_nothing_is_stored(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, BASE + '[[services.apps]]\nname = "down"\napp = "targets.nope:app"\n')
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"), cwd=tmp_path)
    assert res.returncode == ExitCode.BAD_INPUT and "Traceback" not in res.stderr
    assert res.stderr.strip().endswith("services.apps[0].app: cannot import 'targets.nope' "
                                       "(No module named 'targets.nope')")
    assert not (tmp_path / "r.db").exists()


def test_doctor_reports_the_results_database(lab: Lab, stored: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    check = _doctor_db(lab("doctor", "--db", str(stored), "--format", "json"))
    assert check["status"] == "ok"
    assert check["value"].startswith(f"{stored.resolve()}: ")
    assert f"schema {SCHEMA_VERSION}, 2 runs" in check["value"] and "KiB" in check["value"]
    # LAB_DB as for every other command; a missing file is reported, not created.
    monkeypatch.setenv("LAB_DB", str(tmp_path / "later.db"))
    check = _doctor_db(lab("doctor", "--format", "json"))
    assert (check["status"], check["value"]) == ("info", f"{tmp_path / 'later.db'}: not created yet")
    assert not (tmp_path / "later.db").exists()
    (tmp_path / "notes.db").write_text("not a database\n")
    check = _doctor_db(lab("doctor", "--db", str(tmp_path / "notes.db"), "--format", "json"))
    assert check["status"] == "warn" and "not a database" in check["value"]
    res = lab("doctor", "--db", str(stored))
    assert "results database" in res.out and "2 runs" in res.out
