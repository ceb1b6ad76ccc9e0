"""The lab-started nginx balancer with real nginx and real uvicorn replicas on 127.0.0.1:
proxying and keep-alive, the 503 of an empty list, each balancing method really in effect,
reloads under load, refused configurations, and no nginx left after a SIGKILLed lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from lab.errors import ServiceError
from lab.spec import TargetSpec
from lab.topology.balancer import AccessEntry, NginxBalancer
from lab.topology.services import NGINX_DIR_PREFIX, OWNER_FILE, find_components, remove_orphaned_dirs
from lab.topology.targets import TargetProcess, free_port
from tests.conftest import REPO, leaves_no_processes, still_running
from tests.e2e.servers import external_server

NGINX = find_components()["nginx"]
pytestmark = pytest.mark.skipif(not NGINX.usable, reason=str(NGINX.problem))
BACKEND = "tests.e2e.balancer_backend:app"


@dataclass(frozen=True)
class Replicas:
    """The module's replicas (``balancer_backend``), by name: their ``127.0.0.1:PORT``."""

    fast: str
    """Answers after 10 ms."""
    slow: str
    """Answers after 50 ms: 5× slower than ``fast``."""
    a: str
    """``a``, ``b``, ``c``: answer at once."""
    b: str
    c: str


@pytest.fixture(scope="module")
def replicas() -> Iterator[Replicas]:
    delays = {"fast": 10, "slow": 50, "a": 0, "b": 0, "c": 0}
    with leaves_no_processes("the balancer tests' replicas"), contextlib.ExitStack() as stack:
        ports = {}
        for name, delay_ms in delays.items():
            port = ports[name] = free_port()
            argv = [sys.executable, "-m", "uvicorn", BACKEND, "--host", "127.0.0.1", "--port",
                    str(port), "--log-level", "warning", "--no-access-log"]
            stack.enter_context(external_server(argv, port, env={"DELAY_MS": str(delay_ms)}))
        yield Replicas(**{name: f"127.0.0.1:{port}" for name, port in ports.items()})


@contextlib.asynccontextmanager
async def balancer(upstreams: list[str], method: str = "round_robin", hash_key: str | None = None,
                   keepalive: int = 64) -> AsyncIterator[NginxBalancer]:
    """A started balancer, stopped (and checked gone) when the block ends."""
    assert NGINX.path
    lb = NginxBalancer(NGINX.path, method, hash_key, keepalive)
    try:
        await lb.start(upstreams)
        yield lb
    finally:
        tree = []
        for pid in [lb.pid, *lb.worker_pids()]:
            with contextlib.suppress(psutil.Error, TypeError):  # gone already, or never started
                tree.append(psutil.Process(pid))  # type: ignore[arg-type]
        await lb.stop()
        assert not still_running(tree, 5), "nginx still runs after stop()"
        assert lb.directory is None or not lb.directory.exists()


async def logged(lb: NginxBalancer, count: int) -> list[AccessEntry]:
    """The next ``count`` entries of the balancer's access log (nginx writes it buffered,
    at least once a second): waits until they are there."""
    entries: list[AccessEntry] = []
    deadline = time.monotonic() + 10
    while len(entries) < count:
        entries += lb.take_log()
        assert time.monotonic() < deadline, f"only {len(entries)} of {count} requests logged"
        await asyncio.sleep(0.05)
    assert len(entries) == count, f"{len(entries)} entries logged for {count} requests"
    return entries


async def drive(url: str, vus: int, total: int, path: str = "/x",
                headers: Callable[[int], dict[str, str]] | None = None) -> dict[int, str]:
    """``total`` GETs (numbered 1..total in send order) from ``vus`` concurrent keep-alive
    clients (closed loop), every one answered 200 (else the test fails).

    Returns:
        Which replica answered each request: number → ``"127.0.0.1:PORT"``.
    """
    limits = httpx.Limits(max_connections=vus, max_keepalive_connections=vus)
    sent = 0
    answered: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        async def vu() -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                n = sent
                response = await client.get(path, headers=headers(n) if headers else None)
                assert response.status_code == 200, (n, response.status_code, response.text)
                answered[n] = f"127.0.0.1:{response.text.split()[0]}"
        await asyncio.gather(*(vu() for _ in range(vus)))
    return answered


def shares(entries: list[AccessEntry]) -> dict[str | None, float]:
    return {u: sum(e.upstream == u for e in entries) / len(entries) for u in {e.upstream for e in entries}}


async def test_requests_reach_each_replica_over_kept_alive_connections(replicas: Replicas) -> None:
    async with balancer([replicas.a, replicas.b]) as lb:
        assert lb.upstreams == (replicas.a, replicas.b)
        async with httpx.AsyncClient(base_url=lb.url) as client:
            for _ in range(40):
                assert (await client.get("/x")).status_code == 200
        workers = lb.worker_pids()
        # Stopped at once: the entries nginx still held in its buffer are read as it stops.
        await lb.stop()
        entries = lb.take_log()
        assert lb.take_log() == []
    assert len(entries) == 40
    # One client connection to nginx served all 40 (client keep-alive kept) ...
    assert sorted(e.connection_requests for e in entries) == list(range(1, 41))
    assert {e.worker_pid for e in entries} == set(workers)
    # ... and round-robin alternated the replicas.
    assert [e.upstream for e in entries] == [replicas.a, replicas.b] * 20 or \
        [e.upstream for e in entries] == [replicas.b, replicas.a] * 20
    assert all(e.status == 200 and e.upstreams_tried == 1 and e.upstream_time_ms is not None
               for e in entries)


async def test_connections_to_the_replicas_are_kept_alive(tmp_path: Path) -> None:
    port = free_port()
    echo = [sys.executable, "-m", "uvicorn", "targets.echo:app", "--host", "127.0.0.1", "--port",
            str(port), "--log-level", "warning"]
    with external_server(echo, port):
        counts = {}
        direct = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
        for keepalive in (64, 0):
            before = (await direct.get("/stats")).json()
            async with balancer([f"127.0.0.1:{port}"], keepalive=keepalive) as lb:
                async with httpx.AsyncClient(base_url=lb.url) as client:
                    for _ in range(100):
                        assert (await client.get("/ping")).status_code == 200
            after = (await direct.get("/stats")).json()
            counts[keepalive] = (after["requests"] - before["requests"],
                                 after["connections"] - before["connections"])
        await direct.aclose()
    # keepalive 0 (the control): nginx opens a connection per request; with keepalive,
    # HTTP/1.1 and no "Connection: close" to the replica, one connection serves them all.
    assert counts[0] == (100, 100)
    assert counts[64][0] == 100 and counts[64][1] <= 2, counts


async def test_no_replica_answers_503_with_retry_after_at_once_and_a_reload_brings_one(
        replicas: Replicas) -> None:
    async with balancer([]) as lb:
        async with httpx.AsyncClient(base_url=lb.url, timeout=5) as client:
            response = await client.get("/x")
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            await lb.reload([replicas.a])
            assert lb.upstreams == (replicas.a,)
            assert (await client.get("/x")).status_code == 200
            await lb.reload([])  # scale to zero again
            response = await client.get("/x")
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
        entries = await logged(lb, 3)
    assert [(e.status, e.upstream) for e in entries] == [(503, None), (200, replicas.a), (503, None)]
    assert entries[0].upstream_time_ms is None and entries[0].upstreams_tried == 0


async def test_least_conn_and_random_two_favour_the_fast_replica_round_robin_does_not(
        replicas: Replicas) -> None:
    fast_share = {}
    for method in ("round_robin", "least_conn", "random_two"):
        async with balancer([replicas.fast, replicas.slow], method) as lb:
            await drive(lb.url, vus=10, total=300)
            fast_share[method] = shares(await logged(lb, 300)).get(replicas.fast, 0.0)
    # Round-robin splits by count whatever the speed; the other two send each request where
    # fewer are in flight, so the 5× faster replica takes most (measured: 80 %).
    assert 0.4 <= fast_share["round_robin"] <= 0.6, fast_share
    for method in ("least_conn", "random_two"):
        assert fast_share[method] >= 0.65 and fast_share[method] >= fast_share["round_robin"] + 0.15, \
            fast_share


async def test_random_two_picks_at_random_where_round_robin_and_least_conn_take_turns(
        replicas: Replicas) -> None:
    three = [replicas.a, replicas.b, replicas.c]
    order = {}
    for method in ("round_robin", "least_conn", "random_two"):
        async with balancer(three, method) as lb:
            await drive(lb.url, vus=1, total=30)  # one at a time: no replica is ever busier
            order[method] = [e.upstream for e in await logged(lb, 30)]
    for method in ("round_robin", "least_conn"):  # least_conn breaks ties round-robin
        assert set(order[method][:3]) == set(three) and order[method] == order[method][:3] * 10, order
    assert set(order["random_two"]) == set(three)
    assert order["random_two"] != order["random_two"][:3] * 10, order  # odds of a cycle: 3^-27


async def test_hash_keeps_each_key_on_one_replica_and_consistent_hashing_moves_only_the_removed_ones(
        replicas: Replicas) -> None:
    three = [replicas.a, replicas.b, replicas.c]

    def key(n: int) -> dict[str, str]:
        return {"X-Session": f"user-{n % 30}"}

    def by_key(answered: dict[int, str]) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for n, replica in answered.items():
            out.setdefault(n % 30, set()).add(replica)
        return out

    async with balancer(three, "hash", "$http_x_session") as lb:
        before = by_key(await drive(lb.url, vus=4, total=90, headers=key))
        await lb.reload([replicas.a, replicas.b])
        after = by_key(await drive(lb.url, vus=4, total=90, headers=key))
    # Each of the 30 keys went to one replica (three requests each); the keys spread.
    assert all(len(places) == 1 for places in before.values()), before
    assert len(set.union(*before.values())) >= 2, before
    assert all(len(places) == 1 for places in after.values()), after
    # Consistent (ketama) hashing: keys on the replicas that stayed stay where they were;
    # only the removed replica's keys move.
    moved = [k for k in before if before[k] != after[k]]
    assert moved and all(before[k] == {replicas.c} for k in moved), (before, after)
    assert all(after[k] <= {replicas.a, replicas.b} for k in before)


async def test_ip_hash_sends_every_loopback_client_to_one_replica(replicas: Replicas) -> None:
    three = [replicas.a, replicas.b, replicas.c]
    seen = {}
    for method in ("round_robin", "ip_hash"):
        async with balancer(three, method) as lb:
            # A new connection per request: a new client port each time, same address.
            answered = await drive(lb.url, vus=1, total=30, headers=lambda n: {"Connection": "close"})
            seen[method] = set(answered.values())
    assert seen["round_robin"] == set(three)  # the control: the same requests spread
    # ip_hash hashes the first three octets: every 127.0.0.x client is the same client.
    assert len(seen["ip_hash"]) == 1, seen


@dataclass
class Outcome:
    """What a load loop's clients saw: each request's end time and whether it failed."""

    ok: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)

    def failed_between(self, start: float, end: float) -> list[str]:
        return [what for t, what in self.failed if start <= t < end]


async def steady_load(url: str, vus: int, stop: asyncio.Event, out: Outcome) -> None:
    """Keep-alive GETs of /fast from ``vus`` clients until ``stop`` is set (at most 20 s or
    50,000 requests); a failure is recorded, not raised, and the client goes on."""
    limits = httpx.Limits(max_connections=vus, max_keepalive_connections=vus)
    end = time.monotonic() + 20
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=5) as client:
        async def vu() -> None:
            while not stop.is_set() and time.monotonic() < end and len(out.ok) + len(out.failed) < 50_000:
                try:
                    response = await client.get("/fast")
                except httpx.HTTPError as exc:
                    out.failed.append((time.time(), f"{type(exc).__name__}: {exc}"))
                    continue
                if response.status_code == 200:
                    out.ok.append(time.time())
                else:
                    out.failed.append((time.time(), f"HTTP {response.status_code}"))
        await asyncio.gather(*(vu() for _ in range(vus)))


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.02)


async def test_reloads_under_keepalive_load_fail_few_requests_and_route_by_the_new_list() -> None:
    vus = 8
    targets = [TargetProcess(TargetSpec(app="targets.testing:app", app_dir=str(REPO), stats_path=""))
               for _ in range(3)]
    try:
        await asyncio.gather(*(t.start() for t in targets))
        a, b, c = (f"127.0.0.1:{t.port}" for t in targets)
        async with balancer([a, b], "least_conn") as lb:
            out, stop = Outcome(), asyncio.Event()
            load = asyncio.create_task(steady_load(lb.url, vus, stop, out))
            try:
                await until(lambda: len(out.ok) >= 200, "200 requests before the first reload")
                workers_0 = set(lb.worker_pids())
                t_1 = time.time()
                await lb.reload([a, b, c])  # scale out
                t_1_done = time.time()
                workers_1 = set(lb.worker_pids()) - workers_0
                n = len(out.ok)
                await until(lambda: len(out.ok) >= n + 300, "300 requests after the first reload")
                t_2 = time.time()
                await lb.reload([c])  # scale in to the new replica alone
                t_2_done = time.time()
                workers_2 = set(lb.worker_pids()) - workers_0 - workers_1
                n = len(out.ok)
                await until(lambda: len(out.ok) >= n + 300, "300 requests after the second reload")
            finally:
                stop.set()
                await load
            await lb.stop()
            entries = lb.take_log()
    finally:
        await asyncio.gather(*(t.stop() for t in targets))
    assert workers_1 and workers_2 and not workers_1 & workers_2
    # Every request a client saw answered is in nginx's log, answered the same: nothing
    # is hidden on either side.
    assert sum(e.status == 200 for e in entries) == len(out.ok)
    by_worker = {w: [e for e in entries if e.worker_pid in ws]
                 for w, ws in (("before", workers_0), ("scaled out", workers_1), ("scaled in", workers_2))}
    assert {e.upstream for e in by_worker["before"]} == {a, b}
    # The new list is what the new workers balance with: the new replica takes its share,
    # and after the scale-in the removed replicas get nothing.
    scaled_out = shares(by_worker["scaled out"])
    assert set(scaled_out) == {a, b, c} and scaled_out[c] >= 0.15, scaled_out
    assert {e.upstream for e in by_worker["scaled in"]} == {c} and len(by_worker["scaled in"]) >= 300
    # Once reload() returned, the old worker only finished what it held: at most one
    # request per client connection.
    late = [e for e in entries if e.worker_pid in workers_0 and e.t_unix > t_1_done]
    assert len(late) <= vus, late
    # Failures around each reload: the old worker closes the clients' keep-alive
    # connections; at most one request per connection is lost to that race.
    failed_1 = out.failed_between(t_1, t_2)
    failed_2 = out.failed_between(t_2, time.time())
    assert len(failed_1) <= vus and len(failed_2) <= vus, (failed_1, failed_2)
    assert len(out.failed) == len(failed_1) + len(failed_2), out.failed  # none outside a reload
    reconnects = sum(e.connection_requests == 1 for e in by_worker["scaled out"])
    print(f"reload 1: {len(failed_1)} failed, {reconnects} client reconnects, applied in "
          f"{(t_1_done - t_1) * 1000:.0f} ms; reload 2: {len(failed_2)} failed, applied in "
          f"{(t_2_done - t_2) * 1000:.0f} ms; {len(out.ok)} ok; failures: "
          f"{sorted({what for _, what in out.failed})}")


async def test_a_configuration_nginx_refuses_leaves_the_previous_list_serving(replicas: Replicas) -> None:
    async with balancer([replicas.a]) as lb:
        assert lb.directory is not None
        conf = lb.directory / "nginx.conf"
        good = conf.read_text()
        conf.write_text(good.replace("worker_processes 1;", "worker_processes one;"))
        workers = lb.worker_pids()
        with pytest.raises(ServiceError) as raised:
            await lb.reload([replicas.b])
        message = str(raised.value)
        assert message.startswith(f"nginx refused the new upstream list and keeps serving the previous "
                                  f"one ({replicas.a}): ")
        assert "worker_processes" in message and "\n" not in message
        assert lb.upstreams == (replicas.a,) and lb.worker_pids() == workers
        async with httpx.AsyncClient(base_url=lb.url) as client:
            assert (await client.get("/x")).text.split()[0] == replicas.a.split(":")[1]
            conf.write_text(good)
            await lb.reload([replicas.b])
            assert (await client.get("/x")).text.split()[0] == replicas.b.split(":")[1]


async def test_a_balancer_that_cannot_start_says_why_in_one_line_and_leaves_nothing() -> None:
    assert NGINX.path
    lb = NginxBalancer(NGINX.path)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", lb.port))
        taken.listen()
        with pytest.raises(ServiceError) as raised:
            await lb.start([])
    message = str(raised.value)
    assert "Address already in use" in message and "\n" not in message, message
    assert lb.directory is not None and not lb.directory.exists()
    assert lb.proc is not None and lb.proc.returncode is not None
    await lb.stop()


async def test_workers_run_as_the_labs_user_and_buffer_large_bodies_in_their_directory(
        replicas: Replicas) -> None:
    body = b"x" * 300_000  # beyond client_body_buffer_size: nginx writes it to a temp file
    async with balancer([replicas.a]) as lb:
        (worker,) = lb.worker_pids()
        assert psutil.Process(worker).uids().effective == os.geteuid()  # root in CI
        async with httpx.AsyncClient(base_url=lb.url) as client:
            response = await client.post("/upload", content=body)
        assert response.status_code == 200 and response.text.split()[1] == str(len(body))


SIGKILLED_LAB = """
import asyncio, json, sys, time
from lab.topology.balancer import NginxBalancer

async def main():
    lb = NginxBalancer(sys.argv[1], "least_conn")
    await lb.start([])
    print(json.dumps({"pid": lb.pid, "workers": lb.worker_pids(), "dir": str(lb.directory)}), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_sigkill_of_the_lab_leaves_no_nginx_and_the_next_run_removes_its_directory(
        tmp_path: Path) -> None:
    assert NGINX.path
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SIGKILLED_LAB), NGINX.path],
                            cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdout=subprocess.PIPE, text=True)
    nginx: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        nginx = [psutil.Process(pid) for pid in [started["pid"], *started["workers"]]]
        assert len(nginx) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # nginx's workers outlive a master killed with SIGKILL; the master gets SIGTERM (the
        # parent-death signal) and ends them before it exits.
        alive = still_running(nginx, 10)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in nginx:
            with contextlib.suppress(psutil.Error):
                p.kill()
    folder = Path(started["dir"])
    assert folder.parent == tmp_path and folder.name.startswith(NGINX_DIR_PREFIX)
    assert (folder / OWNER_FILE).exists()  # nothing ran the cleanup ...
    assert remove_orphaned_dirs(tmp_path) == [folder]  # ... the next run's does
    assert not folder.exists()
