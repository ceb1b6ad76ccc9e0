"""Generator workers on a Dask cluster (``--cluster``): the same figures as local workers,
merged from each worker's histograms; stops that reach every generator; a lost worker; a
cluster that cannot run the lab, refused in one line.

A module-scoped cluster (a scheduler and two workers on 127.0.0.1, the commands the README
gives for a second machine) serves the tests that name a ``tcp://`` address; ``local:2``
runs start their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from lab.cluster.local import worker_argv
from lab.load.histogram import LatencyHistogram
from lab.load.wire import IntervalReport, decode_report
from lab.topology.targets import free_port
from tests.conftest import REPO, leaves_no_processes, one_line_error, run_lab, write_experiment
from tests.e2e.servers import external_server

pytest.importorskip("distributed")

EXPERIMENT = """
[experiment]
title = "cluster"

[target]
{target}

[load]
vus = 4
duration = "{duration}"
timeout = "2s"
requests = [{{ path = "/fast" }}]
"""


def _start(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **kw)  # type: ignore[call-overload]


def _end(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _scheduler(port: int) -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
            "--port", str(port), "--no-dashboard"]


def _wait_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=20, set_as_default=False) as client:
        if n:
            client.wait_for_workers(n, timeout=30)


def _wait_only(address: str, name: str) -> None:
    """Wait until the scheduler's only worker is the one called ``name``."""
    from distributed import Client

    with Client(address, timeout=20, set_as_default=False) as client:
        deadline = time.monotonic() + 30
        while [w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()] != [name]:
            assert time.monotonic() < deadline, client.scheduler_info(n_workers=-1)["workers"]
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tcp://127.0.0.1:PORT``: a scheduler and two generator workers."""
    folder = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    with leaves_no_processes("the module's Dask cluster"):
        procs = [_start(_scheduler(port))]
        try:
            procs += [_start(worker_argv(address, f"w{i}", folder / f"w{i}")) for i in range(2)]
            _wait_workers(address, 2)
            yield address
        finally:
            _end(procs)


@pytest.fixture(scope="module")
def url_target() -> Iterator[str]:
    """``targets.testing`` served by uvicorn on its own, so a test can count what reaches it
    after the lab is gone."""
    port = free_port()
    with external_server([sys.executable, "-m", "uvicorn", "targets.testing:app", "--host",
                          "127.0.0.1", "--port", str(port), "--log-level", "warning"], port):
        yield f"http://127.0.0.1:{port}"


def _requests_served(url: str) -> int:
    return int(httpx.get(f"{url}/stats", timeout=5).json()["requests"])


def _reports(address: str, run_key: str) -> dict[int, list[IntervalReport]]:
    """Each generator's interval reports of a run, as the scheduler kept them (it keeps the
    last 1000 events of a topic)."""
    from distributed import Client

    from lab.cluster.task import reports_topic

    by_worker: dict[int, list[IntervalReport]] = {}
    with Client(address, timeout=10, set_as_default=False) as client:
        for _, payload in client.get_events(reports_topic(run_key)):
            msg = decode_report(payload["line"])
            if isinstance(msg, IntervalReport):
                by_worker.setdefault(payload["i"], []).append(msg)
    return by_worker


def test_cluster_run_counts_what_the_target_served_and_merges_the_workers_histograms(
        cluster: str, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, EXPERIMENT.format(target='app = "targets.testing:app"',
                                                       duration="2s"))
    db = tmp_path / "r.db"
    proc = run_lab("run", str(exp), "--cluster", cluster, "--db", str(db), "--format", "json",
                   "--threshold", "p99<2000ms")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    run = out["runs"][0]
    assert run["status"] == "completed"
    assert run["config"]["generators"] == {"source": "dask", "cluster": cluster, "scheduler": cluster,
                                           "workers": 2, "hosts": run["config"]["generators"]["hosts"]}
    assert len(run["config"]["generators"]["hosts"]) == 1
    summary = run["summary"]
    # Every request the generators counted reached the target, and no other.
    assert summary["requests"] > 50
    assert summary["requests"] == run["target_stats"]["requests"]
    # The merged p99 is the p99 of both workers' own histograms merged here again.
    import sqlite3

    with sqlite3.connect(db) as con:
        run_key = con.execute("SELECT run_key FROM runs").fetchone()[0]
        rows = con.execute("SELECT worker, host, address FROM generators ORDER BY worker").fetchall()
    assert [r[0] for r in rows] == [0, 1] and all(r[2].startswith("tcp://127.0.0.1:") for r in rows)
    reports = _reports(cluster, run_key)
    assert sorted(reports) == [0, 1]
    merged = LatencyHistogram()
    requests = 0
    for worker_reports in reports.values():
        for report in worker_reports:
            merged.merge_encoded(report.histogram.encode())
            requests += report.ok + report.errors
    assert requests == summary["requests"]
    assert summary["latency_ms"]["p99"] == pytest.approx(merged.percentile_ms(99), abs=0.001)
    (threshold,) = out["thresholds"]
    assert threshold["actual"] == summary["latency_ms"]["p99"] and threshold["passed"]
    assert "2 generator workers on 1 host (dask)" in run_lab("show", "1", "--db", str(db)).stdout


def _lab(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lab", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_load(url: str, timeout_s: float = 20.0) -> None:
    start = _requests_served(url)
    deadline = time.monotonic() + timeout_s
    while _requests_served(url) < start + 20:
        assert time.monotonic() < deadline, "the cluster's generators sent no load"
        time.sleep(0.1)


def _quiet_after(url: str, within_s: float) -> None:
    """The target gets no request more than ``within_s`` after this call."""
    time.sleep(within_s)
    before = _requests_served(url)
    time.sleep(1.0)
    assert _requests_served(url) == before, "a generator kept sending after the run ended"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_stopped_or_killed_lab_leaves_no_generator_running_on_the_cluster(
        cluster: str, url_target: str, tmp_path: Path, sig: signal.Signals) -> None:
    exp = write_experiment(tmp_path, EXPERIMENT.format(target=f'url = "{url_target}"', duration="60s"))
    lab = _lab("run", str(exp), "--cluster", cluster, "--db", str(tmp_path / "r.db"))
    try:
        _wait_for_load(url_target)
        lab.send_signal(sig)
        lab.wait(15)
        _quiet_after(url_target, within_s=1.0)
    finally:
        if lab.poll() is None:
            lab.kill()
        lab.communicate()
    if sig == signal.SIGINT:
        assert lab.returncode == 130
    from distributed import Client

    with Client(cluster, timeout=10, set_as_default=False) as client:
        deadline = time.monotonic() + 5
        while any(client.processing().values()):
            assert time.monotonic() < deadline, client.processing()
            time.sleep(0.1)


async def test_levels_a_user_sets_reach_every_cluster_generator_in_order(cluster: str) -> None:
    import asyncio

    from lab.engine import RunControl, run_plan
    from lab.events import IntervalStats
    from tests.conftest import plan_against_testing

    plan = plan_against_testing({"vus": 4, "duration": "30s", "cluster": cluster,
                                 "requests": [{"path": "/fast"}]})
    control = RunControl()
    levels: list[int] = []

    def watch(event: object) -> None:
        if isinstance(event, IntervalStats):
            levels.append(event.active_vus)

    task = asyncio.create_task(run_plan(plan, [watch], control))

    async def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not condition() and not task.done():
            assert time.monotonic() < deadline, levels
            await asyncio.sleep(0.05)

    try:
        await until(lambda: 4 in levels)
        control.set_level(2)
        await until(lambda: 2 in levels)
        control.set_level(6)
        await until(lambda: levels[-2:] == [6, 6])  # two whole intervals at the last level
    finally:
        control.stop("enough")
        outcome = await task
    assert outcome.status == "aborted", outcome.reason
    # 4, then 2 (1 on each generator), then 6 (3 each), and never an older level again.
    first_6 = levels.index(6)
    assert levels.index(4) < levels.index(2) < first_6, levels
    assert set(levels[first_6:]) == {6}, levels


def _profilers_running(client: object) -> list[bool]:
    def running(dask_worker: object) -> bool:
        return bool(dask_worker.periodic_callbacks["profile"].is_running())  # type: ignore[attr-defined]

    return list(client.run(running).values())  # type: ignore[attr-defined]


def test_the_dask_workers_profiler_pauses_while_a_generator_runs_and_resumes_after(
        cluster: str, url_target: str, tmp_path: Path) -> None:
    """Dask's statistical profiler takes the GIL from the generator every 10 ms (benchmarks/
    cluster.py: 7 % more CPU per request); a user's worker gets it back after the run."""
    from distributed import Client

    exp = write_experiment(tmp_path, EXPERIMENT.format(target=f'url = "{url_target}"', duration="30s"))
    with Client(cluster, timeout=10, set_as_default=False) as client:
        assert _profilers_running(client) == [True, True]
        lab = _lab("run", str(exp), "--cluster", cluster, "--db", str(tmp_path / "r.db"))
        try:
            _wait_for_load(url_target)
            assert _profilers_running(client) == [False, False]
            lab.send_signal(signal.SIGINT)
            lab.wait(15)
        finally:
            if lab.poll() is None:
                lab.kill()
            lab.communicate()
        deadline = time.monotonic() + 5
        while _profilers_running(client) != [True, True]:
            assert time.monotonic() < deadline, _profilers_running(client)
            time.sleep(0.1)


def test_a_worker_lost_mid_run_fails_the_run_naming_it_and_keeps_what_was_measured(
        url_target: str, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, EXPERIMENT.format(target=f'url = "{url_target}"', duration="30s"))
    db = tmp_path / "r.db"
    lab = _lab("run", str(exp), "--cluster", "local:2", "--db", str(db), "--format", "json")
    try:
        _wait_for_load(url_target)
        time.sleep(1.2)  # an interval or so measured before the loss
        workers = [p for p in psutil.Process(lab.pid).children(recursive=True)
                   if "distributed.cli.dask_worker" in " ".join(p.cmdline())]
        assert len(workers) == 2
        workers[1].kill()
        out, err = lab.communicate(timeout=30)
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.communicate()
    assert lab.returncode == 1, err
    run = json.loads(out)["runs"][0]
    assert run["status"] == "failed"
    assert "lost" in run["reason"] and "tcp://127.0.0.1:" in run["reason"], run["reason"]
    assert run["summary"] is None or run["summary"]["requests"] > 0
    import sqlite3

    with sqlite3.connect(db) as con:
        measured = con.execute("SELECT SUM(requests) FROM intervals").fetchone()[0]
    assert measured and measured > 20


def test_a_cluster_that_cannot_run_the_lab_is_refused_in_one_line(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, EXPERIMENT.format(target='app = "targets.testing:app"',
                                                       duration="1s"))
    db = str(tmp_path / "r.db")
    nobody = f"tcp://127.0.0.1:{free_port()}"
    line = one_line_error(*_run(exp, db, nobody))
    assert nobody in line and "cannot reach the Dask scheduler" in line
    line = one_line_error(*_run(exp, db, "local:0"))
    assert "local:0" in line and "1..64" in line
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    with leaves_no_processes("a scheduler without workers"):
        procs = [_start(_scheduler(port))]
        try:
            _wait_workers(address, 0)
            line = one_line_error(*_run(exp, db, address))
            assert address in line and "has no workers" in line and "dask worker" in line
            # A worker whose Python cannot import the lab (as on a machine without it).
            no_lab = ("import sys; sys.modules['lab'] = None; sys.argv[0] = 'dask-worker'; "
                      "from distributed.cli.dask_worker import main; main()")
            argv = [sys.executable, "-c", no_lab, *worker_argv(address, "bare", tmp_path / "bare")[3:]]
            procs.append(_start(argv, env={**os.environ, "PYTHONPATH": ""}))
            _wait_workers(address, 1)
            line = one_line_error(*_run(exp, db, address))
            assert address in line and "not installed" in line, line
            _end(procs[1:])
            del procs[1:]
            # A worker with another version of the lab.
            other = ("import sys, lab; lab.__version__ = '0.0.1'; sys.argv[0] = 'dask-worker'; "
                     "from distributed.cli.dask_worker import main; main()")
            argv = [sys.executable, "-c", other, *worker_argv(address, "old", tmp_path / "old")[3:]]
            procs.append(_start(argv))
            _wait_only(address, "old")
            line = one_line_error(*_run(exp, db, address))
            assert "has scalability-lab 0.0.1, this lab is" in line, line
        finally:
            _end(procs)


def _run(exp: Path, db: str, cluster: str) -> tuple[int, str, str]:
    proc = run_lab("run", str(exp), "--cluster", cluster, "--db", db, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_a_lab_killed_mid_run_leaves_no_local_cluster_behind(url_target: str, tmp_path: Path) -> None:
    from lab.topology.services import remove_orphaned_dirs

    exp = write_experiment(tmp_path, EXPERIMENT.format(target=f'url = "{url_target}"', duration="30s"))
    lab = _lab("run", str(exp), "--cluster", "local:2", "--db", str(tmp_path / "r.db"))
    try:
        _wait_for_load(url_target)
        dask = [p for p in psutil.Process(lab.pid).children(recursive=True)
                if "distributed.cli" in " ".join(p.cmdline())]
        assert len(dask) == 3  # the scheduler and two workers
        folders = {p.cwd() for p in dask}
        lab.kill()
        lab.communicate()
        gone, alive = psutil.wait_procs(dask, timeout=5)
        assert not alive, [p.cmdline() for p in alive]
        _quiet_after(url_target, within_s=0.5)
        (folder,) = folders
        assert Path(folder).name.startswith("lab-dask-")
        # The next run removes it (a lab running beside this test may have done so first).
        remove_orphaned_dirs(Path(folder).parent)
        assert not Path(folder).exists()
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.communicate()
