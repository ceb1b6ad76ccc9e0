"""Shared fixtures: experiment files in tmp dirs, the lab as a subprocess, orphan checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
CONTRACT_TOOL = REPO.parent / "shared" / "tools" / "check_contract.py"
_CHILD_MARKERS = ("lab.load.worker", "uvicorn", "redis-server", "postgres")
# Every process this test session starts inherits this marker, so the orphan check never
# mistakes another session's processes (a developer's second pytest) for ours.
_SESSION = f"{os.getpid()}-{time.time_ns()}"
os.environ["LAB_TEST_SESSION"] = _SESSION


def _lab_children() -> set[int]:
    found = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if not any(m in cmd for m in _CHILD_MARKERS):
            continue
        try:
            if p.environ().get("LAB_TEST_SESSION") == _SESSION:
                found.add(p.info["pid"])
        except psutil.Error:
            continue
    return found


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Fail a test that leaves a target, worker or service process behind (and end it)."""
    before = _lab_children()
    yield
    deadline = time.monotonic() + 5.0
    left = _lab_children() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _lab_children() - before
    if left:
        described = []
        for pid in left:
            try:
                proc = psutil.Process(pid)
                described.append(f"{pid}: {' '.join(proc.cmdline())}")
                proc.kill()
            except psutil.Error:
                continue
        if described:
            pytest.fail("processes left behind: " + "; ".join(described))


def write_experiment(directory: Path, body: str, name: str = "exp") -> Path:
    """Write an experiment TOML (dedented) and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


def run_lab(*args: str, cwd: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lab ARGS`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line_error(code: int, out: str, err: str) -> str:
    """Assert a bad-input failure reported as one line on stderr (exit 2, no traceback,
    nothing on stdout); return that line."""
    from lab.exitcodes import ExitCode

    assert code == ExitCode.BAD_INPUT, (code, out, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert out == ""
    return lines[0]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"
