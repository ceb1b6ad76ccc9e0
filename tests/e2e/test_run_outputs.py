"""What ``lab run`` says and how it exits at the edges: a run of a few milliseconds (too
short to summarise), stdout closed by its reader (``| head``), a target that answers
nothing (every request fails, and the hung target must still stop quickly), a process
tree that ignores SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.analysis.summary import (
    MIN_SHORT_RUN_S,
)
from lab.errors import ExitCode
from lab.procs import spawn, terminate_tree
from lab.report.table import comparison_table, render
from lab.store import Store
from lab.topology.targets import STOP_GRACE_S
from tests.conftest import REPO, lab_in_process, leaves_no_processes, run_lab, write_experiment

FAST = f"""
    [experiment]
    title = "fast"
    [target]
    app = "targets.testing:app"
    app_dir = "{REPO}"
    [load]
    vus = 2
    duration = "2s"
    [[load.requests]]
    path = "/fast"
"""

HANG_APP = '''
import asyncio


async def app(scope, receive, send):
    """/health answers; /hang never does (a target stuck on every request)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/hang":
        await asyncio.sleep(3600)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''


def lab_with_stdout_closed(*args: str, cwd: Path = REPO, timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m lab ARGS`` whose stdout reader is gone before it writes a byte (as
    ``| head`` is once it has its lines); return the exit code and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "lab", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    try:
        _out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


# ------------------------------------------------------------------ a run of 1 ms, stdout closed


@dataclass(frozen=True)
class ShortRun:
    db: Path
    code: int
    stderr: str


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShortRun]:
    """``lab run fast --duration 1ms --warmup 0s --format json --quiet``, its stdout closed
    by the reader before the JSON is written."""
    work = tmp_path_factory.mktemp("short")
    db = work / "r.db"
    path = write_experiment(work, FAST)
    with leaves_no_processes("lab run --duration 1ms"):
        code, err = lab_with_stdout_closed("run", str(path), "--duration", "1ms", "--warmup", "0s",
                                           "--format", "json", "--quiet", "--db", str(db))
    yield ShortRun(db, code, err)


def test_a_closed_stdout_is_not_a_failed_run(short_run: ShortRun) -> None:
    # click turned the BrokenPipeError of the JSON's write into exit 1 ("a run failed"),
    # silently, for a run stored as completed.
    assert short_run.code == ExitCode.OK, short_run.stderr
    assert "Traceback" not in short_run.stderr and "Error" not in short_run.stderr
    with Store(short_run.db, readonly=True) as store:
        assert [r.status for r in store.list_runs()] == ["completed"]


def test_a_run_of_a_few_milliseconds_is_stored_but_not_summarised(short_run: ShortRun) -> None:
    # It read "completed 124.1 req/s" from 7 requests in 56 ms.
    with Store(short_run.db, readonly=True) as store:
        (run,) = store.list_runs()
        assert store.intervals(run.id)  # the load went out and was stored
    assert run.status == "completed" and run.summary is None
    assert run.reason is not None and run.reason.startswith("too short to summarise: 0.")
    assert run.reason.endswith(f"s measured (at least {MIN_SHORT_RUN_S:g} s needed)"), run.reason
    # Every output says "not measured" and why, never a number.
    shown = json.loads(lab_in_process("show", str(run.id), "--db", str(short_run.db),
                                      "--format", "json").stdout)
    assert shown["run"]["measured"] is False and "too short to summarise" in shown["run"]["reason"]
    table = " ".join(render(comparison_table([run]), width=100).split())
    assert f"1 {run.variant} completed – – – – –" in table
    assert f"run 1 completed: {run.reason}" in table


def test_compare_with_its_stdout_closed_still_fails_a_missed_threshold(short_run: ShortRun) -> None:
    # The table's broken pipe exited 0 before the thresholds were checked; the 1 ms run
    # is not measured, so p95<1s is not met: exit 1.
    code, err = lab_with_stdout_closed("compare", "1", "--threshold", "p95<1s", "--db", str(short_run.db))
    assert code == ExitCode.RUN_FAILED and "Traceback" not in err, err


@pytest.mark.parametrize("args", [("runs", "--format", "json"), ("show", "1"), ("sweep",)])
def test_read_commands_with_their_stdout_closed_exit_0(short_run: ShortRun, args: tuple[str, ...]) -> None:
    # click turns a broken pipe into exit 1 ("a run failed"); the reader going away is not.
    code, err = lab_with_stdout_closed(*args, "--db", str(short_run.db))
    assert code == ExitCode.OK and "Traceback" not in err and "Error" not in err, (code, err)


# ------------------------------------------------------------------ a target that answers nothing


def test_a_target_that_answers_nothing_is_reported_loudly_and_stopped_within_its_grace(
        tmp_path: Path) -> None:
    (tmp_path / "hang_app.py").write_text(textwrap.dedent(HANG_APP))
    path = write_experiment(tmp_path, f"""
        [experiment]
        title = "hang"
        [target]
        app = "hang_app:app"
        app_dir = "{tmp_path}"
        ready_path = "/health"
        [load]
        vus = 4
        duration = "1s"
        timeout = "0.5s"
        [[load.requests]]
        path = "/hang"
    """)
    db = tmp_path / "r.db"
    res = run_lab("run", str(path), "--db", str(db), "--quiet", timeout=60)
    # Completed, as docs/exit-codes.md says (errors are figures, not a failed run) ...
    assert res.returncode == ExitCode.OK, res.stderr
    # ... but nobody can miss that nothing was served.
    with Store(db, readonly=True) as store:
        (run,) = store.list_runs()
    assert run.status == "completed" and run.summary is not None and run.summary.ok == 0
    # 4 VUs, each timing out every 0.5 s for 1 s: 8 attempts, or a few more when a second
    # timeout fires just before the end and a third request goes out (seen beside two
    # busy loops: 9). The lines give the run's own count.
    errors = run.summary.errors
    assert 8 <= errors <= 12, run.summary
    warning = [line for line in res.stderr.splitlines() if line.startswith("lab: warning:")]
    assert warning == [
        f"lab: warning: run 1 (default) completed, but every request failed: {errors} errors "
        f"({errors} timeout); e.g. TimeoutError: deadline passed before the whole response arrived"], \
        res.stderr
    table = " ".join(res.stdout.split())
    assert f"run 1 completed, but every request failed: {errors} errors ({errors} timeout)" in table
    # The run ends once its requests time out (1 s + 0.5 s); then the target, its 4
    # requests hung, is stopped: uvicorn waited for them forever, and the lab killed it
    # after 2 × 5 s (the run took 14.4 s for a 4 s duration with a 1 s timeout). One grace
    # period, never two (measured 2.6 s; two would be 7.5 s at the least).
    assert run.duration_s is not None and run.duration_s < 1.5 + 2 * STOP_GRACE_S - 0.5, run.duration_s


async def test_a_tree_that_ignores_sigterm_is_killed_after_one_grace_period() -> None:
    proc = await spawn([sys.executable, "-c",
                        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                        "print('ready', flush=True); time.sleep(60)"],
                       stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None and await proc.stdout.readline() == b"ready\n"
        t0 = time.monotonic()
        code = await terminate_tree(proc, grace_s=1.0)
        took = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # SIGKILL one grace period after SIGTERM (it came after two: 2 s here, 10 s for a target;
    # measured 1.0 s).
    assert code == -9 and 0.9 <= took < 1.75, took
