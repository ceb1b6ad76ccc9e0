"""Bad input through the real entry point (``python -m lab``): one line, exit code 2,
nothing stored; and ``lab doctor`` on the results database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.errors import ExitCode
from lab.store import SCHEMA_VERSION
from lab.topology.services import find_components
from tests.conftest import one_line_error, run_lab, write_experiment
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


HASHED = """
[experiment]
title = "hashed"
[target]
app = "targets.testing:app"
replicas = 2
[balancer]
method = "hash"
hash_key = "{key}"
[load]
vus = 2
duration = "2s"
[[load.requests]]
path = "/"
[[variants]]
name = "top"
[[variants]]
name = "own"
balancer = {{ method = "hash", hash_key = "{variant_key}" }}
"""


@pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")
@pytest.mark.parametrize(("key", "variant_key", "field", "problem"), [
    ("$no_such_variable", "$http_x_user", "balancer.hash_key", 'unknown "no_such_variable" variable'),
    ("$", "$http_x_user", "balancer.hash_key", "invalid variable name"),
    ("$http_x_user", "$http_x$nope", "variants[1].balancer.hash_key", 'unknown "nope" variable'),
])
def test_a_hash_key_nginx_refuses_is_bad_input_before_anything_starts(
        tmp_path: Path, key: str, variant_key: str, field: str, problem: str) -> None:
    path = write_experiment(tmp_path, HASHED.format(key=key, variant_key=variant_key))
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"), cwd=tmp_path,
                  env={"TMPDIR": str(tmp_path)})
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{path}:") and f": {field}: nginx does not take" in line, line
    assert problem in line, line
    assert not (tmp_path / "r.db").exists()
    assert not list(tmp_path.glob("lab-nginx-*")), "an nginx directory was made"
