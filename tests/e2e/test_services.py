"""Backing services (redis-server, PostgreSQL, downstream apps), CPU pinning and the
target's stats series, end to end with real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lab.engine import RunControl, run_plan
from lab.events import Event, ResourceSample, TargetReady
from lab.plan import plan_runs
from lab.spec import Experiment, load_experiment
from lab.store import Store
from lab.topology.services import OWNER_FILE, PG_DIR_PREFIX, find_components, remove_orphaned_dirs
from tests.conftest import REPO, lab_in_process, run_lab, still_running, write_experiment
from tests.synthetic import NEEDS_REDIS

COMPONENTS = find_components()


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
needs_redis = pytest.mark.skipif(not COMPONENTS["redis"].usable,
                                 reason=str(COMPONENTS["redis"].problem))
needs_postgres = pytest.mark.skipif(not COMPONENTS["postgres"].usable,
                                    reason=str(COMPONENTS["postgres"].problem))

ALL_SERVICES = f"""
    [experiment]
    title = "services"
    look_for = "Every request reached redis, PostgreSQL and the downstream app."

    [target]
    app = "targets.testing:app"
    app_dir = "{REPO}"

    [load]
    vus = 2
    duration = "3s"
    warmup = "1s"
    [[load.requests]]
    path = "/services"

    [services]
    redis = "required"
    postgres = "required"
    [[services.apps]]
    name = "downstream"
    app = "targets.testing:app"
"""


@needs_redis
@needs_postgres
def test_services_start_serve_the_target_and_stop_with_the_run(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    path = write_experiment(tmp_path, ALL_SERVICES, name="svc")
    table = run_lab("run", str(path), "--db", str(db), timeout=120)
    assert table.returncode == 0, table.stderr
    # The table, then the what-to-look-for text.
    assert "What to look for" in table.stdout and "downstream app" in table.stdout
    assert "reported by the target" in table.stdout and "services_calls" in table.stdout
    # The same run as JSON (what lab run --format json prints, from the database).
    res = lab_in_process("compare", "1", "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)["runs"][0]
    assert run["status"] == "completed", run["reason"]
    summary = run["summary"]
    # /services answers 500 unless redis, postgres and the downstream all answered.
    assert summary["ok"] > 10 and summary["errors"] == 0, summary
    stats = run["target_stats"]
    assert stats["info"] == {"redis": "yes", "database": "yes"}
    assert stats["per_request"]["services_calls"] == pytest.approx(3.0)
    assert stats["gauges"]["uptime_s"]["max"] >= stats["gauges"]["uptime_s"]["mean"] > 0
    with Store(db, readonly=True) as store:
        services = store._query("select services from runs where id = 1")[0]["services"]
        running = json.loads(services)["running"]
        samples = store._query("select count(*) as n from target_samples where run_id = 1")[0]["n"]
        roles = store._query("select distinct json_extract(detail, '$.service') as s "
                             "from resources where role = 'service'")
    assert set(running) == {"redis", "postgres", "downstream"}
    assert samples >= 2 * 2  # two gauges, read every second over a 3 s run
    assert {r["s"] for r in roles} == {"redis", "postgres", "downstream"}
    for url in running.values():
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert port_is_free(port), f"{url} still listening after the run"
    # lab show puts each gauge beside the per-second series.
    show = lab_in_process("show", "1", "--db", str(db))
    assert show.returncode == 0 and "fast total" in show.stdout and "uptime s" in show.stdout
    series = json.loads(lab_in_process("show", "1", "--db", str(db), "--format", "json").stdout)
    assert {s["name"] for s in series["target_samples"]} == {"uptime_s", "fast_total", "in_flight"}


def test_variant_needing_a_missing_service_is_skipped_with_the_reason(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, NEEDS_REDIS, name="skip")
    # A PATH without redis-server: the lab looks it up there.
    env = {"PATH": str(Path(sys.executable).parent)}
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"), "--format", "json", env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [r["variant"] for r in doc["runs"]] == ["plain"]
    assert doc["skipped"][0]["variant"] == "with-redis"
    assert "redis-server is not installed" in doc["skipped"][0]["reason"]
    assert "apt-get install redis-server" in doc["skipped"][0]["reason"]
    assert "skipping variant with-redis: redis-server is not installed" in res.stderr
    assert "Traceback" not in res.stderr


@needs_redis
def test_a_service_that_cannot_start_fails_the_run_cleanly(tmp_path: Path) -> None:
    body = f"""
        [experiment]
        title = "bad downstream"
        [target]
        app = "targets.testing:app"
        app_dir = "{REPO}"
        [load]
        vus = 1
        duration = "1s"
        [[load.requests]]
        path = "/fast"
        [services]
        redis = true
        [[services.apps]]
        name = "downstream"
        app = "targets.testing:app"
        env = {{ FAIL_STARTUP = "1" }}
    """
    path = write_experiment(tmp_path, body, name="bad")
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"), "--format", "json")
    assert res.returncode == 1
    run = json.loads(res.stdout)["runs"][0]
    assert run["status"] == "failed"
    assert run["reason"].startswith("service 'downstream': target targets.testing:app exited")
    assert "Traceback" not in res.stderr


async def test_target_cpus_pins_the_target_and_keeps_the_generator_off_its_core(
        tmp_path: Path) -> None:
    if (psutil.cpu_count() or 1) < 2:
        pytest.skip("pinning needs at least 2 cores")
    body = f"""
        [experiment]
        title = "pinned"
        [target]
        app = "targets.testing:app"
        app_dir = "{REPO}"
        workers = 2
        cpus = 1
        [load]
        vus = 1
        duration = "1s"
        [[load.requests]]
        path = "/fast"
    """
    plan = plan_runs(load_experiment(write_experiment(tmp_path, body)))[0]
    seen: dict[str, object] = {}

    def listener(event: Event) -> None:
        # The last readings come after the workers ended: their pids may be gone.
        with contextlib.suppress(psutil.Error):
            if isinstance(event, TargetReady) and event.pid:
                root = psutil.Process(event.pid)
                seen["target"] = {tuple(p.cpu_affinity()) for p in [root, *root.children(True)]}
            if isinstance(event, ResourceSample) and event.role == "generator" and event.pid:
                seen["generator"] = tuple(psutil.Process(event.pid).cpu_affinity())

    outcome = await run_plan(plan, [listener], RunControl())
    assert outcome.status == "completed", outcome.reason
    assert seen["target"] == {(0,)}
    assert 0 not in seen["generator"]  # type: ignore[operator]


@pytest.fixture
def pg_dirs() -> Iterator[set[Path]]:
    """Collects the PostgreSQL directories a test's lab made; removes any left at the end."""
    found: set[Path] = set()
    yield found
    for path in found:
        shutil.rmtree(path, ignore_errors=True)


@needs_postgres
def test_sigkill_of_the_lab_leaves_no_service_behind(tmp_path: Path, pg_dirs: set[Path]) -> None:
    # PostgreSQL's directory is what a killed lab leaves behind; redis-server, when
    # installed, is checked too (it must leave no dump.rdb), but is not needed.
    with_redis = COMPONENTS["redis"].usable
    body = ALL_SERVICES.replace('"3s"', '"30s"')
    if not with_redis:
        body = body.replace('    redis = "required"\n', "")
    path = write_experiment(tmp_path, body, name="svc")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(path), "--db",
                             str(tmp_path / "r.db")], cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        kids: list[psutil.Process] = []
        while time.monotonic() < deadline:
            kids = psutil.Process(proc.pid).children(recursive=True)
            cmdlines = []
            for k in kids:
                with contextlib.suppress(psutil.Error):  # a child may exit meanwhile
                    cmdlines.append(k.cmdline())
            for argv in cmdlines:
                if "-D" in argv and argv[0].endswith("postgres"):
                    pg_dirs.add(Path(argv[argv.index("-D") + 1]).parent)
            names = " ".join(" ".join(argv) for argv in cmdlines)
            if ("redis-server" in names or not with_redis) and "postgres" in names \
                    and "lab.load.worker" in names:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the services never started")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # Nothing ran the cleanup: the cluster's directory stays, with its owner file. (Read
        # at once: any lab that starts a run from now on may remove it, as the next does.)
        (pg_dir,) = pg_dirs
        assert pg_dir.name.startswith(PG_DIR_PREFIX) and (pg_dir / OWNER_FILE).exists()
        alive = still_running(kids, 10)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # redis-server left nothing (no dump.rdb) in the lab's working directory.
    assert list(workdir.iterdir()) == []
    # The next run removes the directory as it starts (one that fails at once is enough).
    plan = plan_runs(Experiment.model_validate({
        "experiment": {"title": "next"}, "target": {"url": "http://127.0.0.1:9", "ready_timeout": 0.2},
        "load": {"vus": 1, "duration": "1s", "requests": [{"path": "/"}]}}))[0]
    outcome = asyncio.run(run_plan(plan, [], RunControl()))
    assert outcome.status == "failed"
    assert not pg_dir.exists()


def test_only_directories_of_dead_labs_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    me = {"pid": os.getpid(), "started_at_unix": psutil.Process().create_time(),
          "host": socket.gethostname()}
    owners: dict[str, dict[str, object] | None] = {
        "live": me,
        "dead": {**me, "pid": dead.pid},
        "pid-reused": {**me, "started_at_unix": me["started_at_unix"] - 100},  # type: ignore[operator]
        "other-host": {**me, "pid": dead.pid, "host": "elsewhere"},
        "old-unmarked": None,
        "young-unmarked": None,
        "old-unmarked-in-use": None,
    }
    for name, owner in owners.items():
        folder = tmp_path / f"{PG_DIR_PREFIX}{name}"
        (folder / "data").mkdir(parents=True)
        if owner is not None:
            (folder / OWNER_FILE).write_text(json.dumps(owner))
        elif name.startswith("old"):
            os.utime(folder, (time.time() - 3600, time.time() - 3600))
    user = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                            cwd=tmp_path / f"{PG_DIR_PREFIX}old-unmarked-in-use" / "data")
    try:
        removed = remove_orphaned_dirs(tmp_path)
    finally:
        user.kill()
        user.wait()
    assert sorted(p.name.removeprefix(PG_DIR_PREFIX) for p in removed) == [
        "dead", "old-unmarked", "pid-reused"]
    assert sorted(p.name.removeprefix(PG_DIR_PREFIX) for p in tmp_path.iterdir()) == [
        "live", "old-unmarked-in-use", "other-host", "young-unmarked"]


def test_doctor_lists_components_limits_and_cores() -> None:
    res = run_lab("doctor", "--format", "json")
    assert res.returncode == 0, res.stderr
    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    for name in ("redis-server", "PostgreSQL", "nginx", "CPU cores", "open-file limit", "memory"):
        assert name in checks
    assert checks["CPU cores"]["value"].startswith(f"{psutil.cpu_count()} logical")
    assert checks["open-file limit"]["value"].startswith("soft ")
    # Without redis-server on PATH the doctor says so, and how to install it.
    res = run_lab("doctor", "--format", "json", env={"PATH": str(Path(sys.executable).parent)})
    redis = {c["name"]: c for c in json.loads(res.stdout)["checks"]}["redis-server"]
    assert redis["status"] == "missing" and "apt-get install redis-server" in redis["advice"]
    table = run_lab("doctor")
    assert table.returncode == 0 and "open-file limit" in table.stdout


def test_processes_left_in_a_dead_labs_service_directory_are_ended(tmp_path: Path) -> None:
    # What a SIGKILLed lab can leave: an nginx worker forked by a reload just as its master
    # was told to quit serves on with its directory (or with it already removed).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    me = {"pid": os.getpid(), "started_at_unix": psutil.Process().create_time(),
          "host": socket.gethostname()}
    made = {}
    for name, owner in (("lab-nginx-deadlab", {**me, "pid": dead.pid}), ("lab-nginx-livelab", me),
                        ("lab-nginx-removed", {**me, "pid": dead.pid})):
        folder = tmp_path / name
        folder.mkdir()
        (folder / OWNER_FILE).write_text(json.dumps(owner))
        made[name] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=folder)
    shutil.rmtree(tmp_path / "lab-nginx-removed")  # its process works in a directory that is gone
    try:
        removed = remove_orphaned_dirs(tmp_path)
        assert [p.name for p in removed] == ["lab-nginx-deadlab"]
        for name in ("lab-nginx-deadlab", "lab-nginx-removed"):
            assert made[name].wait(10) == -signal.SIGKILL, name
        assert made["lab-nginx-livelab"].poll() is None  # a running lab's: never touched
    finally:
        for proc in made.values():
            proc.kill()
            proc.wait()
