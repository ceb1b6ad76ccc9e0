"""A replica that exits on its own is taken out of the balancer and replaced, as a
Kubernetes ReplicaSet keeps its count; the requests it failed are counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.store import Store
from lab.topology.services import find_components
from tests.conftest import write_experiment

pytestmark = pytest.mark.skipif(not find_components()["nginx"].usable, reason="nginx is not installed")

CRASHING_APP = '''
import os
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

served = 0

async def work(request):
    global served
    served += 1
    if os.environ.get("LAB_REPLICA_INDEX") == "0" and served == 200:
        os._exit(3)  # replica 0 dies mid-run, with its requests in flight
    return PlainTextResponse("ok")

async def health(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/work", work), Route("/health", health)])
'''

EXPERIMENT = """
[experiment]
title = "a replica dies"
[target]
app = "crashing:app"
app_dir = "{app_dir}"
replicas = 2
stats_path = ""
[balancer]
method = "round_robin"
[load]
model = "open"
rate = 200
duration = "5s"
timeout = "2s"
[[load.requests]]
path = "/work"
"""


def test_a_replica_that_exits_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "crashing.py").write_text(CRASHING_APP)
    path = write_experiment(tmp_path, EXPERIMENT.format(app_dir=tmp_path))
    db = tmp_path / "r.db"
    res = subprocess.run([sys.executable, "-m", "lab", "run", str(path), "--db", str(db)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with Store(db) as store:
        run = store.get_runs([1])[0]
        replicas = {r.replica: r for r in store.replicas(run.id)}
        assert replicas[0].state == "exited", replicas
        assert replicas[1].state == "stopped"
        # The replacement took the next number, started after replica 0 was found gone,
        # and served requests.
        assert replicas[2].state == "stopped" and replicas[2].ready_s is not None, replicas
        exited_at = replicas[0].ended_s
        assert exited_at is not None and replicas[2].started_s >= exited_at
        served = {s.replica: 0 for s in store.replica_intervals(run.id)}
        for s in store.replica_intervals(run.id):
            served[s.replica] += s.requests
        assert served.get(2, 0) > 0, served
        # What the crash cost is counted, never hidden: each of the 1,000 arrivals (200 req/s
        # for 5 s) ended as a success, an error, or dropped.
        ivs = store.intervals(run.id)
        assert sum(iv.requests + iv.dropped + iv.interrupted for iv in ivs) == 1000
        # (nginx retries a GET that found its replica dead on the next one, proxy_next_upstream,
        # so the client may see none of them fail.)
        counts = store.replica_counts(run.id)
        assert counts[-1].ready == 2 and all(c.desired == 2 for c in counts)
