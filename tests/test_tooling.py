"""Project hygiene that a user of the package relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import lab
from tests.conftest import REPO


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")
    if not shutil.which(ruff):
        pytest.skip("ruff not installed")
    res = subprocess.run([ruff, "check", "lab", "targets", "tests"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout


def test_public_api_is_pinned() -> None:
    assert sorted(lab.__all__) == sorted([
        "Experiment", "Latency", "Recorder", "RunControl", "RunOutcome", "RunPlan", "RunRecord",
        "SpecError", "Store", "StoreError", "Summary", "__version__", "load_experiment", "plan_runs",
        "run_plan",
    ])
    for name in lab.__all__:
        assert getattr(lab, name) is not None


def test_python_dash_m_lab_works() -> None:
    res = subprocess.run([sys.executable, "-m", "lab", "--help"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0 and "run" in res.stdout
