"""``lab compare`` of runs behind a balancer, in every format: the JSON and the table carry
the replicas and the autoscaler's decisions as ``lab show`` does, the markdown adds a
Replicas section, the CSV the fleet's cost columns; runs without a balancer are as before.

The runs are synthetic (``tests.synthetic_fleet``: run 1 behind a balancer, run 2 not).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from lab.report.formats import CSV_COLUMNS, FLEET_CSV_COLUMNS
from tests.synthetic_fleet import record_fleet_and_plain


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1: the synthetic fleet (2 → 3 → 2 replicas); run 2: a plain run without a balancer."""
    return record_fleet_and_plain(tmp_path_factory.mktemp("fleet"))


def _compare(db: Path, *args: str) -> str:
    """``lab compare ARGS --db DB`` in-process (it only reads the database)."""
    from click.testing import CliRunner

    from lab.cli import cli

    res = CliRunner().invoke(cli, ["compare", *args, "--db", str(db)])
    assert res.exit_code == 0, res.stderr
    return res.stdout


def test_compare_json_and_table_carry_the_replicas(fleet_db: Path) -> None:
    doc = json.loads(_compare(fleet_db, "1", "2", "--format", "json"))
    fleet, plain = doc["runs"]
    assert [r["replica"] for r in fleet["replicas"]] == [0, 1, 2]
    assert fleet["fleet"]["unrouted"] == 3 and fleet["fleet"]["max_ready"] == 3
    assert [d["applied"] for d in fleet["autoscale_events"]] == [True, False, False, True]
    assert not {"replicas", "fleet", "autoscale_events"} & set(plain)
    table = _compare(fleet_db, "1", "2")
    assert "run 1 (default) by replica" in table and "run 1 (default) autoscaler" in table
    assert "run 2 (default) by replica" not in table


def test_compare_markdown_adds_a_replicas_section(fleet_db: Path) -> None:
    text = _compare(fleet_db, "2", "1", "--format", "markdown")
    section = text[text.index("**Replicas**"):text.index("**Notes**")]
    rows = [line for line in section.splitlines() if line.startswith("| #")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "1", "2"]
    assert all(row.startswith("| #1 default |") for row in rows)
    # Replica 2: 100 of the 700 requests the replicas served; p50 30 ms; it was stopped.
    assert rows[2].split(" | ")[2:] == ["14.3", "100", "0", "30.0", "30.0", "6.000", "stopped |"]
    assert ("- #1 default: nginx least_conn, replica-seconds 15.4, at most 3 ready, 2 scale events "
            "of 4 autoscaler decisions, 3 requests arrived with no replica ready (p50 ") in section
    assert "**Replicas**" not in _compare(fleet_db, "2", "--format", "markdown")


def test_compare_csv_adds_the_fleet_columns_when_a_run_had_replicas(fleet_db: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(_compare(fleet_db, "1", "2", "--format", "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS + FLEET_CSV_COLUMNS
    assert [rows[0][c] for c in FLEET_CSV_COLUMNS] == ["15.4", "3", "3", "2"]
    assert [rows[1][c] for c in FLEET_CSV_COLUMNS] == ["", "", "", ""]
    plain = _compare(fleet_db, "2", "--format", "csv")
    assert plain.splitlines()[0] == ",".join(CSV_COLUMNS)
