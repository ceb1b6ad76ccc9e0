"""End-to-end runs: real uvicorn targets on 127.0.0.1, real worker processes, real SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from lab.results import open_results as Store  # the store as lab run and the TUI open it
from lab.store import StoreError
from tests.conftest import (
    CONTRACT_TOOL,
    REPO,
    lab_in_process,
    leaves_no_processes,
    run_lab,
    still_running,
    write_experiment,
)
from tests.e2e.servers import external_server

_UVICORN = [sys.executable, "-m", "uvicorn", "targets.testing:app", "--log-level", "warning"]
"""The testing target served by uvicorn, as an external URL target (add ``--port``)."""

FAST = """
[experiment]
title = "fast endpoint"
[target]
app = "targets.testing:app"
[load]
vus = 4
duration = "3s"
warmup = "1s"
timeout = "2s"
[[load.requests]]
path = "/fast"
"""


@dataclass(frozen=True)
class FastRun:
    """``lab run`` of FAST with variants a (3 s, 1 s warm-up) and b (1 s, no warm-up) as
    JSON, with --progress: one run for the module's tests, which only read it."""

    db: Path
    json_path: Path
    res: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def fast_ab(tmp_path_factory: pytest.TempPathFactory) -> FastRun:
    work = tmp_path_factory.mktemp("fast-ab")
    db = work / "results.db"
    exp = write_experiment(work, FAST + """
[[variants]]
name = "a"
[[variants]]
name = "b"
load = { duration = "1s", warmup = "0s" }
""")
    with leaves_no_processes("lab run fast-ab"):
        res = run_lab("run", str(exp), "--db", str(db), "--format", "json", "--progress")
    out = work / "out.json"
    out.write_text(res.stdout)
    return FastRun(db, out, res)


def test_intervals_add_up_and_warmup_is_excluded(fast_ab: FastRun) -> None:
    res, db_path = fast_ab.res, fast_ab.db
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    summary = doc["runs"][0]["summary"]
    with Store(db_path) as store:
        run_id = doc["runs"][0]["id"]
        intervals = store.intervals(run_id)
    measured = [iv for iv in intervals if iv.t_s >= 1.0]
    assert [iv.t_s for iv in intervals] == [0.0, 1.0, 2.0]
    assert sum(iv.requests for iv in measured) == summary["requests"]
    assert sum(iv.requests for iv in intervals) > summary["requests"] > 0
    assert summary["ok"] == summary["requests"]
    window = sum(iv.duration_s for iv in measured)
    assert summary["throughput_rps"] == pytest.approx(summary["ok"] / window, rel=1e-3)
    # The progress went to stderr, the data alone to stdout.
    assert "req/s" in res.stderr


def test_json_and_db_meet_the_contract(fast_ab: FastRun) -> None:
    if not CONTRACT_TOOL.exists() and not os.environ.get("CI"):
        pytest.skip(f"{CONTRACT_TOOL} not present")
    res, out, db_path = fast_ab.res, fast_ab.json_path, fast_ab.db
    assert res.returncode == 0, res.stderr
    check = subprocess.run([sys.executable, str(CONTRACT_TOOL), "--json", str(out), "--db", str(db_path)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    assert "contract OK" in check.stdout
    assert [r["variant"] for r in json.loads(res.stdout)["runs"]] == ["a", "b"]


def test_timeouts_are_total_deadlines(tmp_path: Path, db_path: Path) -> None:
    """A server trickling a byte every 0.5 s must still time out at the 1 s deadline."""
    exp = write_experiment(tmp_path, """
        [experiment]
        title = "trickle"
        [target]
        app = "targets.testing:app"
        env = { TRICKLE_EVERY_S = "0.5" }
        [load]
        vus = 3
        duration = "3s"
        timeout = "1s"
        [[load.requests]]
        path = "/trickle"
    """)
    res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)["runs"][0]["summary"]
    assert s["requests"] >= 6
    assert s["ok"] == 0
    assert s["errors"] == s["requests"]
    assert s["errors_by_class"] == {"timeout": s["requests"]}
    # Recorded with their real duration, never as ~0 ms; at the 1 s deadline, not at the
    # end of the 10 s trickle (a deadline per read would never fire). Measured p50 and
    # max 1.00 s; a busy machine only wakes the timers later.
    assert 950 <= s["latency_all_ms"]["p50"] < 5000, s
    assert 950 <= s["latency_all_ms"]["max"] < 5000, s


def test_open_model_corrects_coordinated_omission(tmp_path: Path, db_path: Path) -> None:
    """A 1 s server stall shows in latency from the intended send time, not in service time."""
    exp = write_experiment(tmp_path, """
        [experiment]
        title = "stall"
        [target]
        app = "targets.testing:app"
        env = { STALL_AT_S = "2.0", STALL_FOR_S = "1.0" }
        [load]
        model = "open"
        rate = 200
        connections = 4
        duration = "4s"
        timeout = "3s"
        [[load.requests]]
        path = "/stall"
    """)
    res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)["runs"][0]["summary"]
    assert s["errors"] == 0 and s["dropped"] == 0
    # A quarter of the 800 requests fall due during the 1 s stall; only the 4 on the wire
    # when it begins (0.5 %) have a long service time.
    assert s["requests"] == pytest.approx(800, rel=0.05)
    assert s["latency_ms"]["p99"] >= 300, s
    assert s["service_ms"]["p99"] * 3 < s["latency_ms"]["p99"], s  # measured 4 against 957 ms
    assert s["latency_ms"]["max"] >= 700


def test_errors_are_classified(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, """
        [experiment]
        title = "mix"
        [target]
        app = "targets.testing:app"
        [load]
        vus = 4
        duration = "1s"
        [[load.requests]]
        path = "/status/503"
        [[load.requests]]
        path = "/status/404"
        expect_status = [404]
        [[load.requests]]
        path = "/status/418"
        [[load.requests]]
        path = "/close"
        [[load.requests]]
        path = "/chunked"
    """)
    res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)["runs"][0]
    s = run["summary"]
    assert set(s["errors_by_class"]) == {"http_5xx", "http_4xx"}
    # 404 is expected and /close, /chunked succeed: about 3 of 5 requests are ok.
    assert 0.3 < s["error_rate"] < 0.5
    with Store(db_path) as store:
        errors = {(e.error_class, e.status) for e in store.errors(run["id"])}
        intervals = store.intervals(run["id"])
    assert {c for c, _ in errors} == {"http_5xx", "http_4xx"}
    # Chunked bodies are counted exactly: 3000 bytes per /chunked, 6 per /close.
    assert sum(iv.bytes for iv in intervals) > 0


def test_external_target_that_is_down_fails_the_run_at_once(tmp_path: Path, db_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exp = write_experiment(tmp_path, f"""
        [experiment]
        title = "nobody home"
        [target]
        url = "http://127.0.0.1:{port}"
        ready_path = "/"
        ready_timeout = "10m"
        [load]
        vus = 2
        duration = "1s"
        [[load.requests]]
        path = "/"
    """)
    # Nothing listens on the port: said after a second of retries, not after 10 minutes
    # of ready_timeout (the subprocess would time out).
    res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json", timeout=60)
    assert res.returncode == 1, res.stderr
    run = json.loads(res.stdout)["runs"][0]
    assert run["status"] == "failed"
    assert run["reason"] == (f"target http://127.0.0.1:{port}: connection refused: nothing listens "
                             "there (tried for 1s)")


def test_external_target_that_answers_but_is_not_ready_is_waited_for(tmp_path: Path,
                                                                       db_path: Path) -> None:
    from lab.topology.targets import free_port

    port = free_port()
    with external_server(_UVICORN + ["--port", str(port)], port, env={"READY_NEVER": "1"}):
        exp = write_experiment(tmp_path, f"""
            [experiment]
            title = "not ready"
            [target]
            url = "http://127.0.0.1:{port}"
            ready_timeout = "3s"
            [load]
            vus = 1
            duration = "1s"
            [[load.requests]]
            path = "/fast"
        """)
        res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 1, res.stderr
    run = json.loads(res.stdout)["runs"][0]
    assert run["reason"] == (f"target http://127.0.0.1:{port} did not answer 200 on /health "
                             "within 3s (last: HTTP 503)")


def test_external_url_target_is_measured(tmp_path: Path, db_path: Path) -> None:
    """A target the lab does not start: only the generator and the system are sampled."""
    from lab.topology.targets import free_port

    port = free_port()
    with external_server(_UVICORN + ["--port", str(port)], port):
        exp = write_experiment(tmp_path, f"""
            [experiment]
            title = "external"
            [target]
            url = "http://127.0.0.1:{port}"
            ready_timeout = "10s"
            [load]
            vus = 2
            duration = "1s"
            [[load.requests]]
            path = "/fast"
        """)
        res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)["runs"][0]
    assert run["summary"]["ok"] > 100
    assert run["summary"]["target_cpu_s_per_1k"] is None
    with Store(db_path) as store:
        roles = {r.role for r in store.resources(run["id"])}
    assert roles == {"generator", "lab", "system"}


def test_target_that_never_starts_fails_with_its_stderr(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, """
        [experiment]
        title = "broken"
        [target]
        app = "targets.testing:app"
        env = { FAIL_STARTUP = "1" }
        [load]
        vus = 1
        duration = "1s"
        [[load.requests]]
        path = "/fast"
    """)
    res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 1
    run = json.loads(res.stdout)["runs"][0]
    assert run["status"] == "failed"
    assert "exited with code" in run["reason"]
    assert "FAIL_STARTUP" in run["reason"]  # the target's own stderr is quoted


def test_target_crash_midway_keeps_the_data(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, """
        [experiment]
        title = "crash"
        [target]
        app = "targets.testing:app"
        env = { CRASH_AFTER_REQUESTS = "300" }
        [load]
        vus = 2
        duration = "10s"
        think_time = "10ms"
        [[load.requests]]
        path = "/crash-after"
    """)
    res = run_lab("run", str(exp), "--db", str(db_path), "--format", "json")
    assert res.returncode == 1
    run = json.loads(res.stdout)["runs"][0]
    assert run["status"] == "failed"
    assert "target exited with code 3" in run["reason"]
    with Store(db_path) as store:
        intervals = store.intervals(run["id"])
        assert store.get_run(run["id"]).status == "failed"
    # About 1.6 s of load (2 VUs, 10 ms apart), all of it summarised: the 300 answers
    # (one may be lost to the reset) over the time up to the crash.
    summary = run["summary"]
    assert run["measured"] and summary["ok"] >= 295
    window = intervals[-1].t_s + intervals[-1].duration_s
    assert window < 9, "a crashed target must end the run's 10 s of load early"
    assert summary["window_s"] == pytest.approx(window, abs=1e-3)
    assert summary["throughput_rps"] == pytest.approx(summary["ok"] / window, rel=1e-3)


def _child_running(pid: int, marker: str) -> psutil.Process | None:
    """A descendant of ``pid`` whose command line holds ``marker``, if one runs."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if marker in " ".join(child.cmdline()):
                return child
        except psutil.Error:  # ended meanwhile
            continue
    return None


def test_a_generator_worker_that_dies_fails_the_run_with_exit_1(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, FAST.replace('duration = "3s"', 'duration = "30s"'))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(exp), "--db", str(db_path),
                             "--format", "json"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Once the load is under way (an interval stored), the worker is killed.
        deadline = time.monotonic() + 30
        worker = None
        while worker is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                out, err = proc.communicate(timeout=30)
                pytest.fail(f"the run never produced an interval (lab exit {proc.returncode}); "
                            f"stderr: {err[-2000:]!r}; stdout: {out[-2000:]!r}")
            time.sleep(0.2)
            try:
                with Store(db_path, readonly=True) as store:
                    runs = store.list_runs()
                    if not runs or not store.intervals(runs[0].id):
                        continue
            except StoreError:  # not there yet, or being created by the lab
                continue
            worker = _child_running(proc.pid, "lab.load.worker")
        worker.kill()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "failed" and run["reason"].startswith("generator worker 0 exited with code -9")
    with Store(db_path, readonly=True) as store:
        stored = store.get_run(run["id"])
        intervals = store.intervals(run["id"])
    assert stored.status == "failed" and stored.reason == run["reason"]
    assert intervals  # what it measured before is kept


def test_ctrl_c_stores_aborted_run_and_leaves_no_process(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, FAST.replace('duration = "3s"', 'duration = "30s"'))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(exp), "--db", str(db_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.2)
            children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if db_path.exists():
                with Store(db_path) as store:
                    runs = store.list_runs()
                    if runs and len(store.intervals(runs[0].id)) >= 2:
                        break
        else:
            pytest.fail("the run never produced intervals")
        assert len(children) >= 2  # the target and a generator worker
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    alive = [pid for pid in children if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    with Store(db_path) as store:
        run = store.list_runs()[0]
        assert run.status == "aborted"
        assert "SIGINT" in (run.reason or "")
        assert len(store.intervals(run.id)) >= 2
    assert "aborted" in out


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, FAST.replace('duration = "3s"', 'duration = "30s"'))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(exp), "--db", str(db_path),
                             "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # SIGTERM once the load is under way (its first interval is stored).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if db_path.exists():
                with Store(db_path) as store:
                    runs = store.list_runs()
                    if runs and store.intervals(runs[0].id):
                        break
        else:
            pytest.fail("the run never produced an interval")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    with Store(db_path) as store:
        assert store.list_runs()[0].status == "aborted"


def test_kill_9_leaves_no_orphans_and_the_run_is_marked_later(tmp_path: Path, db_path: Path) -> None:
    exp = write_experiment(tmp_path, FAST.replace('duration = "3s"', 'duration = "30s"'))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(exp), "--db", str(db_path),
                             "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.2)
            children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if db_path.exists():
                with Store(db_path) as store:
                    runs = store.list_runs()
                    # A live lab's run is never taken for a killed one.
                    assert not runs or runs[0].status == "running"
                    if runs and len(store.intervals(runs[0].id)) >= 3:
                        break
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The children get a parent-death signal: they end on their own.
    alive = still_running([psutil.Process(p) for p in children if psutil.pid_exists(p)], 10)
    assert alive == []
    # lab runs (read-only) already shows it as killed, with what it measured after the
    # 1 s warm-up; the database is left as it is until a lab opens it for writing.
    res = lab_in_process("runs", "--db", str(db_path), "--format", "json")
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)["runs"][0]
    assert listed["status"] == "failed" and listed["measured"] is True
    assert listed["reason"].startswith(f"killed: the lab process (pid {proc.pid}) ended without finishing")
    with Store(db_path, readonly=True) as store:
        assert store._query("SELECT status FROM runs")[0]["status"] == "running"
    with Store(db_path) as store:  # as the next lab run or the TUI opens it
        first = store.get_run(1)
        intervals = store.intervals(1)
        stored = store._query("SELECT status FROM runs WHERE id = 1")[0]["status"]
    assert stored == first.status == "failed"
    assert "ended without finishing" in (first.reason or "")
    measured = [iv for iv in intervals if iv.t_s >= 1.0]
    assert first.summary is not None and measured
    assert first.summary.ok == sum(iv.ok for iv in measured) == listed["summary"]["ok"]
    assert first.summary.throughput_rps == pytest.approx(
        sum(iv.ok for iv in measured) / sum(iv.duration_s for iv in measured))
