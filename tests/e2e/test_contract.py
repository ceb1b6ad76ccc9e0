"""The shared contract tool (a subprocess) accepts what the lab writes: the JSON of an
experiment's runs and a results.db holding a completed and a failed run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.report import dumps, experiment_json
from lab.store import RunRecord, Store
from tests.conftest import CONTRACT_TOOL as CHECK_CONTRACT
from tests.unit.test_report import runs  # noqa: F401 (fixture)
from tests.unit.test_store import record, run_events


@pytest.mark.skipif(not CHECK_CONTRACT.exists() and not os.environ.get("CI"),
                    reason="../shared/tools/check_contract.py absent")
def test_experiment_json_passes_the_contract_check(runs: list[RunRecord], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out.json"
    out.write_text(dumps(experiment_json("caching", runs)))
    result = subprocess.run(
        [sys.executable, str(CHECK_CONTRACT), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract OK" in result.stdout


@pytest.mark.skipif(not CHECK_CONTRACT.exists() and not os.environ.get("CI"),
                    reason="../shared/tools/check_contract.py absent")
def test_db_passes_the_contract_check(db_path: Path) -> None:
    with Store(db_path) as store:
        record(store, run_events()[1])
        record(store, run_events(status="failed", reason="boom", with_summary=False)[1])
    result = subprocess.run(
        [sys.executable, str(CHECK_CONTRACT), "--db", str(db_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract OK" in result.stdout
