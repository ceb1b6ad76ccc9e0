"""Shared fixtures: experiment files in tmp dirs, the lab as a subprocess, orphan checks."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
CONTRACT_TOOL = REPO.parent / "shared" / "tools" / "check_contract.py"
_CHILD_MARKERS = ("lab.load.worker", "uvicorn", "redis-server", "postgres", "distributed.cli")
# Every process this test session starts inherits this marker, so the orphan check never
# mistakes another session's processes (a developer's second pytest) for ours.
_SESSION = f"{os.getpid()}-{time.time_ns()}"
os.environ["LAB_TEST_SESSION"] = _SESSION


_MARKERS_B = tuple(m.encode() for m in _CHILD_MARKERS)
_SESSION_ENTRY = f"LAB_TEST_SESSION={_SESSION}".encode()


def _lab_children() -> set[int]:
    """Live target, worker and service processes started by this test session (wherever
    they are in the process tree: one the lab left behind is re-parented to init).

    Runs twice per test, so on Linux it reads /proc itself: a quarter of the cost of
    psutil.process_iter (0.5 against 2.2 ms with 80 processes). A zombie (exited, not yet
    reaped) has an empty command line, so it never counts.
    """
    if not os.path.isdir("/proc/self"):
        return _lab_children_psutil()
    found = set()
    nginx: dict[int, bytes] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            if cmd.startswith(b"nginx: "):
                nginx[int(name)] = cmd
                continue
            if not any(m in cmd for m in _MARKERS_B):
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if _SESSION_ENTRY in f.read().split(b"\0"):
                    found.add(int(name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found | _lab_nginx(nginx)


_NGINX_PREFIX = re.compile(rb" -p (\S*/lab-nginx-[^/\s]+)")


def _lab_nginx(nginx: dict[int, bytes]) -> set[int]:
    """The nginx processes (``lab.topology.balancer``) of this test session's labs, among
    ``nginx`` (pid → command line). nginx clears its environment, so the session marker is
    read from the lab that owns the master's directory (its owner file), and workers are
    the masters' children. A master whose lab is gone is not recognised (the test that kills
    a lab checks its nginx itself)."""
    masters = set()
    for pid, cmd in nginx.items():
        prefix = _NGINX_PREFIX.search(cmd)
        if not cmd.startswith(b"nginx: master") or prefix is None:
            continue
        try:
            with open(os.path.join(prefix.group(1).decode(), "lab-owner.json"), "rb") as f:
                owner = json.loads(f.read())["pid"]
            if owner != os.getpid():
                with open(f"/proc/{owner}/environ", "rb") as f:
                    if _SESSION_ENTRY not in f.read().split(b"\0"):
                        continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        masters.add(pid)
    workers = set()
    for pid in nginx:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid in masters:
            workers.add(pid)
    return masters | workers


def _lab_children_psutil() -> set[int]:
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


def end_left_behind(before: set[int], wait_s: float = 5.0) -> list[str]:
    """The lab processes started since ``before`` that are still running after up to
    ``wait_s``: each is killed, and described (pid and command line) in the result."""
    deadline = time.monotonic() + wait_s
    left = _lab_children() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _lab_children() - before
    described = []
    for pid in left:
        try:
            proc = psutil.Process(pid)
            described.append(f"{pid}: {' '.join(proc.cmdline())}")
            proc.kill()
        except psutil.Error:
            continue
    return described


@contextlib.contextmanager
def leaves_no_processes(what: str) -> Iterator[None]:
    """Fail (naming ``what``) when the block leaves a lab process behind, as no_orphans
    does for a test. For module- and session-scoped fixtures: what they start is already
    there when no_orphans looks first."""
    before = _lab_children()
    yield
    left = end_left_behind(before)
    assert not left, f"{what} left processes behind: {'; '.join(left)}"


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Fail a test that leaves a target, worker or service process behind (and end it).

    What a module- or session-scoped fixture starts is already there when this looks
    first: such fixtures start it within ``leaves_no_processes``.
    """
    before = _lab_children()
    yield
    described = end_left_behind(before)
    if described:
        pytest.fail("processes left behind: " + "; ".join(described))


def still_running(procs: Iterable[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to ``timeout_s`` for ``procs`` to end; return the ones still running.

    A zombie has ended: it only waits for its parent to collect its exit status. For an
    orphan that parent is init, which may take its time (PID 1 of the 2-core VM this suite
    was timed on reaped orphans ~1.8 s after they ended), so psutil.wait_procs, which waits
    for the pid to disappear, would time init instead of the process.
    """
    procs = list(procs)
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def write_experiment(directory: Path, body: str, name: str = "exp") -> Path:
    """Write an experiment TOML (dedented) and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


def plan_against_testing(load: dict[str, Any], target: dict[str, Any] | None = None, name: str = "t") -> Any:
    """The first ``RunPlan`` of an inline experiment against ``targets.testing:app``:
    ``load`` and ``target`` are the experiment's tables as dicts (timeout 2 s unless given)."""
    from lab.plan import plan_runs
    from lab.spec import Experiment

    exp = Experiment.model_validate({
        "experiment": {"title": "t"},
        "target": {"app": "targets.testing:app", **(target or {})},
        "load": {"timeout": "2s", **load},
    })
    exp.name = name
    return plan_runs(exp)[0]


def run_lab(*args: str, cwd: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lab ARGS`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def lab_in_process(*args: str, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``lab ARGS`` through the console script's ``main`` in this process, captured as
    ``run_lab`` captures it: the same commands, output, exit code and error handling
    without starting Python again (~0.5 s a call on the 2-core CI machine).

    For commands that read what a test stored with a real ``lab run`` (``runs``, ``show``,
    ``compare``, ``report``, ``export``, ``--help``), and for input the lab refuses before
    it starts anything. Whatever is about the process itself (signals, a closed stdout,
    what reaches stderr as it exits, the machine ``lab doctor`` reads), whatever starts a
    run or a UI, and one bad-input case of each family (tests/e2e/test_input_errors.py)
    go through ``run_lab``.
    """
    import signal

    from click.testing import CliRunner

    from lab.cli import main

    code = 0
    previous = signal.getsignal(signal.SIGTERM)  # main installs its own handler
    with contextlib.chdir(cwd or REPO), CliRunner().isolation(env=env) as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exc:
            if isinstance(exc.code, str):  # sys.exit("message"), as Python prints it
                sys.stderr.write(exc.code + "\n")
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            signal.signal(signal.SIGTERM, previous)
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(["lab", *args], code, stdout, stderr)


def one_line_error(code: int, out: str, err: str) -> str:
    """Assert a bad-input failure reported as one line on stderr (exit 2, no traceback,
    nothing on stdout); return that line."""
    from lab.errors import ExitCode

    assert code == ExitCode.BAD_INPUT, (code, out, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert out == ""
    return lines[0]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


