"""Project hygiene that a user of the package relies on: ruff is clean, ``python -m lab`` works."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")
    if not shutil.which(ruff):
        pytest.skip("ruff not installed")
    res = subprocess.run([ruff, "check", "lab", "targets", "tests"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout


def test_python_dash_m_lab_works() -> None:
    res = subprocess.run([sys.executable, "-m", "lab", "--help"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0 and "run" in res.stdout
