"""``lab export`` end to end, on the runs of a real ``lab run``: CSV series, resources and
targets, JSON, bad input, and the ``LAB_DB`` environment variable.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab.cli.export import export
from lab.errors import ExitCode
from lab.report import formats
from lab.store import Store
from tests.conftest import run_lab, write_experiment

# --------------------------------------------------------------------------- lab export, end to end

EXPERIMENT = """
[experiment]
title = "export test"
[target]
app = "targets.testing:app"
stats_path = "/stats"
[load]
vus = 2
duration = "2s"
warmup = "0s"
timeout = "2s"
[[load.requests]]
path = "/fast"
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results.db holding one real 2-second run (run id 1) against targets.testing."""
    tmp = tmp_path_factory.mktemp("export")
    db = tmp / "results.db"
    exp = write_experiment(tmp, EXPERIMENT, name="exported")
    res = run_lab("run", str(exp), "--duration", "2s", "--db", str(db), "--quiet", cwd=tmp, timeout=90)
    assert res.returncode == 0, res.stderr
    return db


def _export(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(export, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_export_csv_series(recorded: Path) -> None:
    code, out, err = _export("1", "--format", "csv", "--db", str(recorded))
    assert code == 0, err
    assert err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(formats.SERIES_COLUMNS)
    with Store(recorded, readonly=True) as store:
        assert len(rows) == len(store.intervals(1)) >= 2
    assert {r["run_id"] for r in rows} == {"1"} and {r["variant"] for r in rows} == {"default"}
    assert sum(int(r["ok"]) for r in rows) > 0
    assert [float(r["t_s"]) for r in rows] == sorted(float(r["t_s"]) for r in rows)


def test_export_csv_resources_and_targets(recorded: Path) -> None:
    code, out, err = _export("1", "--what", "resources", "--db", str(recorded))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(formats.RESOURCE_COLUMNS)
    assert {"target", "generator"} <= {r["role"] for r in rows}
    # A process that is gone is never sampled as zero.
    zero = [f"{r['role']} pid {r['pid']} at {r['t_s']} s" for r in rows if int(r["rss_bytes"]) <= 0]
    assert not zero, f"sampled with no memory: {', '.join(zero)}"
    code, out, err = _export("1", "--what", "targets", "--db", str(recorded))
    assert code == 0, err
    names = {r["name"] for r in csv.DictReader(io.StringIO(out))}
    assert "fast_total" in names


def test_export_json_to_a_file(recorded: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    code, out, err = _export("1", "1", "--format", "json", "-o", str(target), "--db", str(recorded))
    assert code == 0, err
    assert out == "" and err == ""
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert list(doc) == ["runs"] and len(doc["runs"]) == 1  # the repeated id counts once
    run = doc["runs"][0]
    assert {"id", "variant", "experiment", "status", "intervals", "resources", "target_samples"} <= set(run)
    assert run["id"] == 1 and run["experiment"] == "exported" and run["status"] == "completed"
    assert run["intervals"] and {"t_s", "ok", "ok_rps", "p95_ms"} <= set(run["intervals"][0])
    assert run["resources"] and {"role", "cpu_percent", "rss_bytes", "service"} <= set(run["resources"][0])
    assert run["target_samples"] and set(run["target_samples"][0]) == {"t_s", "name", "value"}


def test_export_through_the_lab_entry_point(recorded: Path) -> None:
    """As the lead will wire it: ``python -c`` over lab.cli.main with the command added."""
    code = ("import sys; from lab.cli import cli, main; from lab.cli.export import export; "
            "cli.add_command(export); main(sys.argv[1:])")
    res = subprocess.run([sys.executable, "-c", code, "export", "1", "--db", str(recorded)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("run_id,variant,t_s,") and res.stderr == ""
    res = subprocess.run([sys.executable, "-c", code, "export", "7", "--db", str(recorded)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == ExitCode.BAD_INPUT and res.stdout == ""
    assert res.stderr.strip() == f"{recorded}: no run with id 7"


@pytest.mark.parametrize("case", ["unknown_run", "missing_db", "not_a_db", "what_with_json", "bad_output"])
def test_export_bad_input_is_one_line_and_exit_2(recorded: Path, tmp_path: Path, case: str) -> None:
    missing = tmp_path / "nope.db"
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not sqlite")
    args = {
        "unknown_run": ["1", "99", "--db", str(recorded)],
        "missing_db": ["1", "--db", str(missing)],
        "not_a_db": ["1", "--db", str(foreign)],
        "what_with_json": ["1", "--format", "json", "--what", "resources", "--db", str(recorded)],
        "bad_output": ["1", "-o", str(tmp_path / "no" / "dir" / "x.csv"), "--db", str(recorded)],
    }[case]
    code, out, err = _export(*args)
    assert code == ExitCode.BAD_INPUT, (out, err)
    assert out == ""
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    expected = {
        "unknown_run": "no run with id 99", "missing_db": "no such results database",
        "not_a_db": "foreign.db", "what_with_json": "--format csv only", "bad_output": "cannot write",
    }[case]
    assert expected in err
    assert not missing.exists()


def test_export_via_lab_db_environment(recorded: Path) -> None:
    res = CliRunner().invoke(export, ["1", "--format", "json"], env={"LAB_DB": str(recorded)})
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["runs"][0]["id"] == 1
