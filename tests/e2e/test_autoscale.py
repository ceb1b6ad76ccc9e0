"""The autoscaler in a real run: replicas behind a real nginx grow as load rises; every
stored decision is recomputed from its stored inputs with the HPA rule; a SIGKILLed lab
leaves no nginx and no replica behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lab.autoscale import replay
from lab.autoscale.stored import input_of, settings_of
from lab.store import Store
from lab.topology.services import find_components
from tests.conftest import still_running, write_experiment

pytestmark = pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")

RISING = """
[experiment]
title = "rising"
[target]
app = "targets.replicas:app"
env = { SLOTS = "4", SERVICE_MS = "20" }
[balancer]
method = "least_conn"
[autoscale]
metric = "utilization"
target = 0.6
min_replicas = 1
max_replicas = 4
sync_period = "500ms"
scale_down_window = "2s"
[load]
model = "open"
timeout = "10s"
max_in_flight = 3000
stages = [{ duration = "1s", target = 400 }, { duration = "{hold}", target = 400 }]
[[load.requests]]
path = "/work"
"""


def test_the_autoscaler_scales_up_and_every_decision_replays(tmp_path: Path) -> None:
    # 400 req/s into one replica of 200 req/s (4 slots × 20 ms, a sleep): utilization 1.0,
    # ratio 1/0.6 = 1.67 per sync, so it doubles within a second or two.
    path = write_experiment(tmp_path, RISING.replace("{hold}", "4s"))
    db = tmp_path / "r.db"
    res = subprocess.run([sys.executable, "-m", "lab", "run", str(path), "--db", str(db)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with Store(db) as store:
        run = store.get_runs([1])[0]
        decisions = store.autoscale_events(run.id)
        assert len(decisions) >= 7  # one per 0.5 s over ~5 s
        assert any(d.applied and d.desired > d.current for d in decisions), decisions
        counts = store.replica_counts(run.id)
        assert max(c.ready for c in counts) >= 2
        assert all(c.desired <= 4 for c in counts)
        replicas = store.replicas(run.id)
        assert len(replicas) >= 2 and all(r.state == "stopped" for r in replicas)
        # A new replica took traffic once ready.
        served = {s.replica for s in store.replica_intervals(run.id) if s.requests}
        assert len(served - {-1}) >= 2, served
        # Replay: the rule, fed the stored inputs in order, gives every stored decision back.
        settings = settings_of(run.config["autoscale"])
        again = replay(settings, [input_of(d.t_s, d.inputs) for d in decisions])
        assert [(a.current, a.recommended, a.desired, a.reason) for a in again] == \
            [(d.current, d.recommended, d.desired, d.reason) for d in decisions]
        for a, d in zip(again, decisions, strict=True):
            assert d.metric_value == pytest.approx(a.metric_value) if a.metric_value is not None \
                else d.metric_value is None
        # What the replicas served adds up to what the generator counted (nothing lost to
        # the reloads without being counted as an error).
        whole = sum(iv.requests for iv in store.intervals(run.id))
        assert sum(s.requests for s in store.replica_intervals(run.id)) == whole
        assert run.summary is not None
        assert run.summary.errors == sum(iv.errors for iv in store.intervals(run.id)
                                         if iv.t_s >= run.settings.load.warmup_s)


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


def test_sigkill_of_the_lab_leaves_no_nginx_and_no_replica(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, RISING.replace("{hold}", "60s"))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(path), "--db",
                             str(tmp_path / "r.db")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        kids: list[psutil.Process] = []
        while time.monotonic() < deadline:
            kids = _tree(proc.pid)
            names = []
            for k in kids:
                with contextlib.suppress(psutil.Error):
                    names.append(" ".join(k.cmdline()))
            replicas = sum("targets.replicas:app" in n for n in names)
            if any("nginx: worker" in n for n in names) and replicas >= 2:
                break  # nginx serves and the autoscaler has added a replica
            time.sleep(0.2)
        else:
            pytest.fail(f"nginx and a second replica never ran; lab stderr: {proc.stderr}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        alive = still_running(kids, 10)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
