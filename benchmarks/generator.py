"""How fast is the lab's load generator? Its two client engines against wrk, Locust and hey.

Starts nginx (the Debian package) on one core, from its own config in a temporary
directory, and on the other core drives it with each generator in turn, at 50
keep-alive connections, ``--repeats`` times in alternating order (ABBA, so drift on a
shared machine hits every tool alike):

- the lab's ``fast`` and ``httpx`` engines: a real generator worker process
  (``python -m lab.load.worker``'s code, on uvloop, closed model, 50 VUs), pinned with
  ``taskset`` and driven over its JSON-lines protocol exactly as the engine drives it;
- ``wrk -t1 -c50 --latency``, Locust ``FastHttpUser`` (headless, one process, no wait
  time; installed into its own venv ``benchmarks/.venv-locust`` so the lab's venv stays
  clean) and ``hey -c 50`` where installed.

Then, with the same target:

- generator processes: the fast engine with 1 and with 2 worker processes, pinned to
  separate cores when cores remain after the target's; on a 2-core machine none does,
  so the verdict is "skipped" and an informational run shares both cores with a
  2-worker nginx;
- httpx configurations: one client per connection (the lab's choice) against one shared
  pool, and the cost of creating a client with and without a shared SSL context;
- open-model accuracy: the fast engine's open model at 25, 50 and 80 % of its measured
  closed-model maximum: achieved rate versus planned, the worker's CPU, and the p99 of
  the send lag (how late each request went out versus its intended time, per request,
  measured here as latency minus service time) and of the worker's lag histogram (its
  10 ms loop-lag probe and, in the open model, every request's send lag: what the
  generator-bound flag reads);
- memory: the RSS of a fast-engine worker at 80 % of the maximum for ``--soak`` seconds.

It prints a table with the targets of issue 4 and PASS / FAIL per row. Every process it
starts runs in its own process group and is ended on every exit path (normal end,
error, Ctrl-C, SIGTERM); each one also gets a parent-death signal. Run from the
repository root::

    .venv/bin/python benchmarks/generator.py                 # about 17 minutes
    .venv/bin/python benchmarks/generator.py --seconds 5 --repeats 2 --soak 30

Not a test: its figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
LOCUST_VENV = REPO / "benchmarks" / ".venv-locust"

_PR_SET_PDEATHSIG = 1
TASKSET = shutil.which("taskset")

# -- targets (issue 4, point 7) ------------------------------------------------------------
FAST_VS_WRK = 0.5
FAST_VS_LOCUST = 10.0
HTTPX_VS_LOCUST = 1.0
SCALE_EFFICIENCY = 0.9
OPEN_RATE_ERROR_PCT = 1.0
OPEN_LAG_P99_MS = 2.0
RSS_DRIFT_PCT = 10.0

OPEN_LEVELS = (0.25, 0.50, 0.80)
PHASES = ("tools", "floor", "httpx", "open", "soak", "workers")


# == child processes =======================================================================

def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Children:
    """Every process this script starts: each in its own session (process group), ended
    with SIGTERM then SIGKILL to the whole group by ``stop`` / ``stop_all``."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(list(argv), start_new_session=True, preexec_fn=_die_with_parent,
                                **kwargs)
        self.procs.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen[Any], timeout_s: float) -> tuple[int, float]:
        """Reap ``proc`` (killing its group if it outlives ``timeout_s``); returns its exit
        status and the CPU seconds (user + system) it and its reaped children used."""
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.procs.remove(proc)
                self._kill_group(proc)  # anything it left behind in its group
                return proc.returncode, usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                self.stop(proc)
                raise RuntimeError(f"{Path(proc.args[0]).name} ran past its time limit; ended")
            time.sleep(0.02)

    @staticmethod
    def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def stop(self, proc: subprocess.Popen[Any], grace_s: float = 3.0) -> None:
        if proc.returncode is None:
            self._kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
                proc.wait(5)
        self._kill_group(proc)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run on core ``cpu`` (``taskset`` execs it: the pid stays the tool's)."""
    if cpu is None or TASKSET is None:
        return list(argv)
    return [TASKSET, "-c", str(cpu), *argv]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"target at {url} not ready within {timeout_s:g}s ({last})")


# == the target ============================================================================

NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            access_log off;
            return 200 "ok";
        }}
    }}
}}
"""


@dataclass
class Target:
    kind: str
    """``nginx`` or ``uvicorn``."""
    base_url: str
    path: str
    proc: subprocess.Popen[Any]
    label: str

    @property
    def url(self) -> str:
        return self.base_url + self.path


def start_target(children: Children, kind: str, tmp: Path, cpu: int | None,
                 workers: int = 1) -> Target:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if kind == "nginx":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        folder = Path(tempfile.mkdtemp(prefix=f"nginx{workers}-", dir=tmp))
        folder.chmod(0o755)  # the worker runs as nobody when we are root
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workers=workers, tmp=folder, port=port))
        proc = children.spawn(pinned(cpu, [nginx, "-p", str(folder), "-c", str(conf),
                                           "-e", str(folder / "error.log")]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = Target("nginx", base, "/", proc,
                        f"nginx {nginx_version(nginx)}, {workers} worker process"
                        f"{'es' if workers > 1 else ''}, " + (f"core {cpu}" if cpu is not None
                                                               else "unpinned"))
    else:
        proc = children.spawn(
            pinned(cpu, [sys.executable, "-m", "uvicorn", "targets.testing:app", "--host",
                         "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
                         "warning", "--workers", str(workers)]),
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = Target("uvicorn", base, "/fast", proc,
                        "UVICORN targets.testing:app /fast (nginx missing: NOT comparable with "
                        "nginx figures), " + (f"core {cpu}" if cpu is not None else "unpinned"))
    try:
        wait_ready(target.url, proc)
    except Exception:
        children.stop(proc)
        raise
    return target


def nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    m = re.search(r"nginx/(\S+)", out.stderr + out.stdout)
    return m.group(1) if m else "?"


# == one measured run ======================================================================

@dataclass
class Result:
    tool: str
    repeat: int
    requests: int
    seconds: float
    rps: float
    cpu_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_us_per_req(self) -> float | None:
        if self.cpu_s is None or not self.requests:
            return None
        return self.cpu_s / self.requests * 1e6

    @property
    def cpu_pct(self) -> float | None:
        return None if self.cpu_s is None or not self.seconds else self.cpu_s / self.seconds * 100

    def line(self) -> str:
        return (f"  [{self.repeat}] {self.tool:<20} {self.rps:>10,.0f} req/s  "
                f"{fmt(self.cpu_us_per_req, 1):>7} µs/req  CPU {fmt(self.cpu_pct, 0):>4} %  "
                f"p50 {fmt(self.p50_ms, 2):>6}  p99 {fmt(self.p99_ms, 2):>6} ms  "
                f"err {self.errors}"
                + (f"  others {self.extra['others_pct']:.0f} %" if "others_pct" in self.extra else ""))


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


class CpuAtLoadStart:
    """Reads a tool's CPU time when its first connection to the target port is up, so
    start-up work (a Python interpreter importing gevent, say) is not charged to its
    requests. Polls from a thread until then."""

    def __init__(self, pid: int, port: int) -> None:
        import psutil

        self.cpu: float | None = None
        self._proc = psutil.Process(pid)
        self._port = port
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conns = self._proc.net_connections(kind="tcp")
                if any(c.raddr and c.raddr.port == self._port for c in conns):
                    t = self._proc.cpu_times()
                    self.cpu = t.user + t.system
                    return
            except psutil.Error:
                return
            time.sleep(0.005)

    def result(self) -> float:
        self._thread.join(1)
        return self.cpu or 0.0


class OthersMeter:
    """CPU used on this machine by processes other than this script, its children and
    the target, while a run lasts (percent of one core): the noise of a shared machine."""

    def __init__(self, target_pids: Sequence[int]) -> None:
        import resource

        import psutil

        self._resource, self._psutil = resource, psutil
        self._target_pids = list(target_pids)
        self.start = self._reading()

    def _reading(self) -> tuple[float, float, float]:
        t = self._psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        own = 0.0
        for who in (self._resource.RUSAGE_SELF, self._resource.RUSAGE_CHILDREN):
            u = self._resource.getrusage(who)
            own += u.ru_utime + u.ru_stime
        for pid in self._target_pids:
            with contextlib.suppress(self._psutil.Error):
                root = self._psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(self._psutil.Error):
                        c = proc.cpu_times()
                        own += c.user + c.system
        return time.monotonic(), busy, own

    def read(self) -> float:
        wall0, busy0, own0 = self.start
        wall, busy, own = self._reading()
        return max(0.0, ((busy - busy0) - (own - own0)) / (wall - wall0) * 100)


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _duration_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable duration {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(children: Children, target: Target, cpu: int | None, conns: int, seconds: float,
            repeat: int) -> Result:
    proc = children.spawn(pinned(cpu, ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency",
                                       target.url]),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = CpuAtLoadStart(proc.pid, _port_of(target.base_url))
    assert proc.stdout is not None
    out = proc.stdout.read()
    _code, cpu_total = children.wait(proc, seconds + 30)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m or not rps:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_err = (int(errors.group(1)) if errors else 0) + (sum(map(int, sock.groups())) if sock else 0)
    wall = _duration_ms(m.group(2) + m.group(3)) / 1000
    return Result("wrk", repeat, int(m.group(1)), wall, float(rps.group(1)),
                  cpu_total - start.result(), _duration_ms(lat["50"]), _duration_ms(lat["99"]),
                  n_err)


def run_hey(children: Children, target: Target, cpu: int | None, conns: int, seconds: float,
            repeat: int) -> Result:
    proc = children.spawn(pinned(cpu, ["hey", "-z", f"{seconds:g}s", "-c", str(conns), target.url]),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = CpuAtLoadStart(proc.pid, _port_of(target.base_url))
    assert proc.stdout is not None
    out = proc.stdout.read()
    _code, cpu_total = children.wait(proc, seconds + 60)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"Total:\s*([\d.]+) secs", out)
    if not rps or not total:
        raise RuntimeError(f"hey output not understood:\n{out[-2000:]}")
    lat = {k: float(v) * 1000 for k, v in re.findall(r"(50|99)%+ in ([\d.]+) secs", out)}
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    ok = sum(int(n) for code, n in codes if code.startswith("2"))
    errs = sum(int(n) for code, n in codes if not code.startswith("2"))
    err_dist = re.search(r"Error distribution:(.*)", out, re.S)
    if err_dist:
        errs += sum(int(n) for n in re.findall(r"\[(\d+)\]", err_dist.group(1)))
    return Result("hey", repeat, ok + errs, float(total.group(1)), float(rps.group(1)),
                  cpu_total - start.result(), lat.get("50"), lat.get("99"), errs)


LOCUSTFILE = """\
from locust import FastHttpUser, constant, task


class Hammer(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get({path!r})
"""


def ensure_locust(install: bool) -> Path | None:
    exe = LOCUST_VENV / "bin" / "locust"
    if exe.exists():
        return exe
    if not install:
        return None
    print(f"setting up Locust in {LOCUST_VENV.relative_to(REPO)} (once) …", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(LOCUST_VENV)], check=True)
    (LOCUST_VENV / ".gitignore").write_text("*\n")
    subprocess.run([str(LOCUST_VENV / "bin" / "pip"), "install", "-q", "locust"], check=True)
    return exe if exe.exists() else None


def locust_version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"locust (\S+)", out.stdout + out.stderr)
    return m.group(1) if m else "?"


def run_locust(children: Children, exe: Path, target: Target, cpu: int | None, conns: int,
               seconds: float, repeat: int, tmp: Path) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="locust-", dir=tmp))
    locustfile = folder / "locustfile.py"
    locustfile.write_text(LOCUSTFILE.format(path=target.path))
    log = (folder / "locust.log").open("w")
    try:
        proc = children.spawn(
            pinned(cpu, [str(exe), "-f", str(locustfile), "--headless", "-u", str(conns), "-r",
                         str(conns), "-t", f"{seconds:g}s", "--host", target.base_url,
                         "--only-summary", "--loglevel", "WARNING",
                         "--stop-timeout", "0"]),
            cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        start = CpuAtLoadStart(proc.pid, _port_of(target.base_url))
        _code, cpu_total = children.wait(proc, seconds + 60)
    finally:
        log.close()
    out = (folder / "locust.log").read_text()
    # The summary Locust prints at exit, not its CSV: the CSV is written periodically and
    # may miss the last seconds of the run.
    agg = re.findall(r"^\s+Aggregated\s+(\d+)\s+(\d+)\(.*?\|\s*([\d.]+)\s+[\d.]+\s*$", out, re.M)
    pct_header = re.search(r"^Type\s+Name\s+(50%.*# reqs)\s*$", out, re.M)
    pct_rows = re.findall(r"^\s+Aggregated\s+((?:\S+\s+){11}\d+)\s*$", out, re.M)
    if not agg or not pct_header or not pct_rows:
        raise RuntimeError(f"Locust's summary not understood:\n{out[-3000:]}")
    n, fails, rps = int(agg[0][0]), int(agg[0][1]), float(agg[0][2])
    pct = dict(zip(pct_header.group(1).split(), pct_rows[0].split(), strict=False))
    return Result("Locust", repeat, n, n / rps if rps else seconds, rps,
                  cpu_total - start.result(), float(pct["50%"]), float(pct["99%"]), fails)


# -- the lab's generator worker ------------------------------------------------------------

def lab_load(model: str, level: float, seconds: float, client: str, path: str) -> dict[str, Any]:
    """A ``[load]`` table as the worker takes it (validated by the worker itself)."""
    load: dict[str, Any] = {"model": model, "duration": seconds, "timeout": 5.0, "client": client,
                            "requests": [{"path": path}], "workers": 1}
    if model == "closed":
        load["vus"] = int(level)
    else:
        load["rate"] = level
    return load


def run_lab(children: Children, target: Target, load: dict[str, Any], tool: str, repeat: int,
            cpus: Sequence[int | None], send_lag: bool = False,
            rss_every_s: float | None = None) -> Result:
    """Run ``len(cpus)`` generator worker processes (one per entry, pinned to it) over the
    worker's JSON-lines protocol, as ``lab.engine`` does, and merge what they report."""
    import psutil

    from lab.load import wire
    from lab.load.histogram import LatencyHistogram

    workers = len(cpus)
    load = {**load, "workers": workers}
    procs: list[subprocess.Popen[Any]] = []
    inbox: queue.Queue[tuple[int, wire.Ready | wire.IntervalReport | wire.Done | dict[str, Any] | None]] = (
        queue.Queue())

    def reader(i: int, stream: Any) -> None:
        for line in stream:
            # The benchmark's own closing line; everything else is the lab's wire format.
            bench_line = json.loads(line) if line.startswith('{"type":"bench"') else None
            inbox.put((i, bench_line if bench_line is not None else wire.decode_report(line)))
        inbox.put((i, None))

    stderr_files = []
    try:
        for i, cpu in enumerate(cpus):
            err = tempfile.TemporaryFile("w+")
            stderr_files.append(err)
            argv = [sys.executable, str(SCRIPT), "_worker"] + (["--send-lag"] if send_lag else [])
            proc = children.spawn(pinned(cpu, argv), cwd=REPO, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
            procs.append(proc)
            threading.Thread(target=reader, args=(i, proc.stdout), daemon=True).start()
            assert proc.stdin is not None
            proc.stdin.write(wire.encode(wire.WorkerConfig(base_url=target.base_url, load=load, index=i,
                                                           workers=workers, seed=1)).decode())
            proc.stdin.flush()

        def worker_died(i: int) -> RuntimeError:
            stderr_files[i].seek(0)
            return RuntimeError(f"generator worker {i} ended early: {stderr_files[i].read()[-2000:]}")

        ready = 0
        deadline = time.monotonic() + 30
        while ready < workers:
            i, msg = inbox.get(timeout=max(0.1, deadline - time.monotonic()))
            if msg is None:
                raise worker_died(i)
            ready += isinstance(msg, wire.Ready)
        ps = [psutil.Process(p.pid) for p in procs]
        rss_ready = ps[0].memory_info().rss
        t0 = time.monotonic() + 0.2
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(wire.encode(wire.Start(t0=t0)).decode())
            proc.stdin.flush()
        intervals: list[list[wire.IntervalReport]] = [[] for _ in procs]
        bench: list[dict[str, Any]] = [{} for _ in procs]
        ended = 0
        # A generator behind its schedule goes on sending after the planned end (the lab's
        # engine gives up 15 s after it); allow for that here and report it.
        limit = t0 + 1.5 * float(load["duration"]) + float(load["timeout"]) + 60
        rss: list[tuple[float, int, int]] = []
        next_rss = t0 + (rss_every_s or 0)
        while ended < workers:
            now = time.monotonic()
            if now > limit:
                raise RuntimeError("generator workers ran past their time limit")
            if rss_every_s and now >= next_rss:
                with contextlib.suppress(psutil.Error):
                    rss.append((now - t0, ps[0].memory_info().rss, ps[0].num_fds()))
                next_rss += rss_every_s
            try:
                i, msg = inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            if msg is None:
                ended += 1
            elif isinstance(msg, wire.IntervalReport):
                intervals[i].append(msg)
            elif isinstance(msg, dict):
                bench[i] = msg
        cpu_total = 0.0
        for i, proc in enumerate(procs):
            code, _cpu = children.wait(proc, 10)
            if code != 0 or not bench[i]:
                raise worker_died(i)
    finally:
        for proc in procs:
            children.stop(proc)
        for f in stderr_files:
            f.close()
    hist, lag, send = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    ok = errors = dropped = 0
    walls = []
    by_class: dict[str, int] = {}
    for i in range(workers):
        walls.append(sum(iv.duration_s for iv in intervals[i]))
        for iv in intervals[i]:
            ok += iv.ok
            errors += iv.errors
            dropped += iv.dropped
            for cls, n in iv.errors_by_class.items():
                by_class[cls] = by_class.get(cls, 0) + n
            hist.merge_encoded(iv.histogram_all.encode())
            lag.merge_encoded(iv.histogram_lag.encode())
        send.merge_encoded(bench[i].get("send_lag", "").encode())
        cpu_total += bench[i]["cpu_s"]
    wall = max(walls) if walls else 0.0
    requests = ok + errors
    # The steady rate: whole intervals after the first one and before the last one (which
    # also holds the requests completed after the planned end).
    per_index: dict[int, int] = {}
    for i in range(workers):
        for iv in intervals[i]:
            if iv.index >= 1 and iv.t_s + iv.duration_s <= float(load["duration"]) - 1:
                per_index[iv.index] = per_index.get(iv.index, 0) + iv.ok + iv.errors
    steady_rps = sum(per_index.values()) / len(per_index) if per_index else None
    extra: dict[str, Any] = {
        "dropped": dropped, "errors_by_class": by_class,
        "loop_lag_p99_ms": lag.percentile_ms(99), "rss_ready": rss_ready, "rss": rss,
        "workers": workers, "max_rss": max(b["max_rss"] for b in bench),
        "send_lag_p50_ms": send.percentile_ms(50) if send_lag else None,
        "send_lag_p99_ms": send.percentile_ms(99) if send_lag else None,
        "send_lag_max_ms": send.max_ms() if send_lag else None,
        "planned_s": float(load["duration"]), "steady_rps": steady_rps,
    }
    return Result(tool, repeat, requests, wall, requests / wall if wall else 0.0, cpu_total,
                  hist.percentile_ms(50), hist.percentile_ms(99), errors, extra)


def _child_worker(send_lag: bool) -> None:
    """``generator.py _worker``: the lab's generator worker, unchanged (same protocol, same
    executor, same uvloop), plus one closing ``bench`` line: the CPU it used from the start
    command on, its peak RSS and, with ``--send-lag``, a histogram of how late each
    request went out versus its intended time (latency from the intended time minus
    service time from the send: exactly the send's lateness)."""
    import resource

    import lab.load.worker as worker
    from lab.load.histogram import LatencyHistogram
    from lab.load.recorder import count_us

    state: dict[str, Any] = {"cpu0": None}
    send_counts: dict[int, int] = {}  # µs → n: as cheap as the recorder's own counting

    class BenchRecorder(worker.StatsRecorder):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            state["cpu0"] = time.process_time()  # built on the start command

        if send_lag:
            def record(self, now: float, latency_s: float, service_s: float, *rest: Any) -> None:
                super().record(now, latency_s, service_s, *rest)
                count_us(send_counts, latency_s - service_s)

    worker.StatsRecorder = BenchRecorder  # type: ignore[misc]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the worker does: the parent ends it
    try:
        code = worker._run(worker.main_async())
    except BrokenPipeError:
        sys.exit(0)
    cpu0 = state["cpu0"]
    send_hist = LatencyHistogram()
    send_hist.add_counts(send_counts)
    bench_line = {"type": "bench", "cpu_s": time.process_time() - cpu0 if cpu0 is not None else 0.0,
                  "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "send_lag": send_hist.encode().decode()}
    sys.stdout.write(json.dumps(bench_line, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    sys.exit(code)


# -- bare loops: httpx configurations and the floors under the fast engine ----------------

LOOP_MODES = ("httpx per-connection", "httpx shared-pool", "bare protocol", "fast engine loop")


def _child_loop(config: dict[str, Any]) -> None:
    """``generator.py _loop JSON``: ``conns`` connections in a closed loop on uvloop,
    without the lab's executor and recorder, for one of ``LOOP_MODES``:

    - ``httpx per-connection``: ``HttpxEngine.send``, each task with its own client of one
      connection (the lab's choice);
    - ``httpx shared-pool``: ``HttpxEngine.send``, every task through one shared client
      whose pool holds ``conns`` connections;
    - ``fast engine loop``: ``FastEngine.send`` in ``conns`` tasks, counting only: the
      engine's own cost, without the executor and the recorder around it;
    - ``bare protocol``: an ``asyncio.Protocol`` that writes the fast engine's request
      bytes and counts responses parsed by httptools, writing the next request from the
      parser callback (no task, no future, no timing): the floor of Python on uvloop.

    The httpx modes record each latency in an HDR histogram and also time creating a
    client with the engine's shared SSL context and with a fresh one.
    """
    import asyncio

    import uvloop

    from lab.load.histogram import LatencyHistogram
    from lab.load.workload import Request

    mode = config["mode"]
    conns = int(config["conns"])
    base_url = config["base_url"]
    req = Request("GET", config["path"], None, None, frozenset(), True)
    hist = LatencyHistogram()
    counts = {"ok": 0, "errors": 0}
    extra: dict[str, Any] = {}

    async def httpx_loop(end: float) -> None:
        import httpx

        from lab.load.httpx_engine import HttpxEngine

        engine = HttpxEngine(base_url, 5.0)
        t = time.perf_counter()
        clients = [engine.new_client() for _ in range(conns)]
        extra["shared_ctx_ms"] = (time.perf_counter() - t) / conns * 1000
        t = time.perf_counter()
        own = [httpx.AsyncClient(base_url=base_url, trust_env=False) for _ in range(5)]
        extra["own_ctx_ms"] = (time.perf_counter() - t) / 5 * 1000
        for c in own:
            await c.aclose()
        if mode == "httpx shared-pool":
            for c in clients:
                await c.aclose()
            pool = httpx.AsyncClient(
                base_url=engine.base_url, timeout=httpx.Timeout(6.0), follow_redirects=False,
                trust_env=False, verify=engine._ssl,
                limits=httpx.Limits(max_connections=conns, max_keepalive_connections=conns),
                headers={"User-Agent": "scalability-lab", "Accept": "*/*",
                         "Accept-Encoding": "identity"})
            clients = [pool] * conns

        async def vu(client: Any) -> None:
            while time.monotonic() < end:
                start = time.monotonic()
                out = await engine.send(client, req)
                hist.record_s(time.monotonic() - start)
                counts["ok" if out.error_class is None else "errors"] += 1

        await asyncio.gather(*(vu(c) for c in clients))
        for c in set(clients):
            await c.aclose()

    async def fast_loop(end: float) -> None:
        from lab.load.fast_engine import FastEngine

        engine = FastEngine(base_url, 5.0)

        async def vu() -> None:
            conn = engine.new_client()
            ok = errors = 0
            while time.monotonic() < end:
                out = await engine.send(conn, req)
                if out.error_class is None:
                    ok += 1
                else:
                    errors += 1
            counts["ok"] += ok
            counts["errors"] += errors
            await conn.aclose()

        await asyncio.gather(*(vu() for _ in range(conns)))

    async def bare_loop(end: float) -> None:
        from httptools import HttpResponseParser

        from lab.load.fast_engine import FastEngine

        data = FastEngine(base_url, 5.0).encode(req)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        open_conns = [conns]

        class Bare(asyncio.Protocol):
            def __init__(self) -> None:
                self.parser = HttpResponseParser(self)
                self.transport: Any = None

            def connection_made(self, transport: Any) -> None:
                self.transport = transport
                transport.write(data)

            def data_received(self, chunk: bytes) -> None:
                self.parser.feed_data(chunk)

            def on_message_complete(self) -> None:
                counts["ok"] += 1
                if time.monotonic() < end:
                    self.transport.write(data)
                else:
                    self.transport.close()

            def connection_lost(self, exc: Exception | None) -> None:
                open_conns[0] -= 1
                if open_conns[0] == 0 and not done.done():
                    done.set_result(None)

        host, port = base_url.rsplit("//", 1)[1].split(":")
        for _ in range(conns):
            await loop.create_connection(Bare, host, int(port.rstrip("/")))
        await asyncio.wait_for(done, end - time.monotonic() + 10)

    async def main() -> dict[str, Any]:
        end = time.monotonic() + float(config["seconds"])
        cpu0, wall0 = time.process_time(), time.monotonic()
        if mode.startswith("httpx"):
            await httpx_loop(end)
        elif mode == "fast engine loop":
            await fast_loop(end)
        else:
            await bare_loop(end)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        timed = hist.count > 0
        return {"requests": counts["ok"] + counts["errors"], "errors": counts["errors"],
                "wall": wall, "cpu_s": cpu, "p50": hist.percentile_ms(50) if timed else None,
                "p99": hist.percentile_ms(99) if timed else None, **extra}

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(json.dumps(uvloop.run(main())), flush=True)


def run_loop(children: Children, target: Target, mode: str, cpu: int | None, conns: int,
             seconds: float, repeat: int) -> Result:
    config = {"base_url": target.base_url, "path": target.path, "conns": conns,
              "seconds": seconds, "mode": mode}
    proc = children.spawn(pinned(cpu, [sys.executable, str(SCRIPT), "_loop", json.dumps(config)]),
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    code, _cpu = children.wait(proc, seconds + 60)
    if code != 0 or not out.strip():
        raise RuntimeError(f"{mode} child failed ({code}): {err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    extra = {k: r[k] for k in ("shared_ctx_ms", "own_ctx_ms") if k in r}
    return Result(mode, repeat, r["requests"], r["wall"], r["requests"] / r["wall"],
                  r["cpu_s"], r["p50"], r["p99"], r["errors"], extra)


# == the benchmark =========================================================================

def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def median_of(results: list[Result], key: Callable[[Result], float | None]) -> float | None:
    values = [v for v in (key(r) for r in results) if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Verdict:
    measure: str
    target: str
    measured: str
    status: str


class Bench:
    def __init__(self, args: argparse.Namespace, children: Children, tmp: Path) -> None:
        self.args = args
        self.children = children
        self.tmp = tmp
        self.verdicts: list[Verdict] = []
        cores = sorted(os.sched_getaffinity(0))
        self.cores = cores
        self.target_cpu = args.target_core if args.target_core is not None else cores[-1]
        self.gen_cpu = args.gen_core if args.gen_core is not None else cores[0]
        if self.target_cpu == self.gen_cpu and len(cores) > 1:
            raise SystemExit("--target-core and --gen-core must differ")
        self.spare = [c for c in cores if c != self.target_cpu]
        self.results: dict[str, list[Result]] = {}
        self.target: Target | None = None
        self.target_pids: list[int] = []
        """Targets running now: their CPU is not "others"."""

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def verdict(self, measure: str, target: str, measured: str, ok: bool | None) -> None:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        self.verdicts.append(Verdict(measure, target, measured, status))

    def target_kind(self) -> str:
        if self.args.target == "uvicorn":
            return "uvicorn"
        if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
            return "nginx"
        if self.args.target == "nginx":
            raise SystemExit("nginx is not installed (apt-get install -y nginx)")
        return "uvicorn"

    # -- phases ------------------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        kind = self.target_kind()
        self.target = start_target(self.children, kind, self.tmp, self.target_cpu)
        self.target_pids.append(self.target.proc.pid)
        self.header()
        if "tools" in a.phases:
            self.tools_phase()
        if "floor" in a.phases:
            self.floor_phase()
        if "httpx" in a.phases:
            self.httpx_phase()
        if "open" in a.phases or "soak" in a.phases:
            self.open_phase()
        if "workers" in a.phases:
            self.workers_phase(kind)
        self.summary()

    def header(self) -> None:
        a = self.args
        assert self.target is not None
        cpu_model = "?"
        with contextlib.suppress(OSError):
            m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
            cpu_model = m.group(1) if m else "?"
        load1 = os.getloadavg()[0]
        self.say(f"# generator benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        self.say(f"command:  {' '.join([Path(sys.executable).name, *sys.argv])}")
        self.say(f"machine:  {os.cpu_count()} cores ({cpu_model}), {platform.platform()}, "
                 f"Python {platform.python_version()}, load average {load1:.2f} at start")
        self.say(f"target:   {self.target.label}, {self.target.url}")
        self.say(f"generator core {self.gen_cpu}; {a.connections} connections; {a.seconds:g} s per "
                 f"run; {a.repeats} repeats in alternating order")
        self.say()

    def _tools(self) -> list[tuple[str, Callable[[int], Result]]]:
        a, t, c = self.args, self.target, self.children
        assert t is not None
        conns, secs, cpu = a.connections, a.seconds, self.gen_cpu
        tools: list[tuple[str, Callable[[int], Result]]] = [
            ("lab fast", lambda r: run_lab(c, t, lab_load("closed", conns, secs, "fast", t.path),
                                           "lab fast", r, [cpu])),
            ("lab httpx", lambda r: run_lab(c, t, lab_load("closed", conns, secs, "httpx", t.path),
                                            "lab httpx", r, [cpu])),
        ]
        if shutil.which("wrk"):
            tools.append(("wrk", lambda r: run_wrk(c, t, cpu, conns, secs, r)))
        else:
            self.say("wrk: not installed (apt-get install -y wrk): skipped")
        locust = ensure_locust(not a.no_install) if not a.no_locust else None
        if locust is not None:
            self.say(f"Locust {locust_version(locust)} from {locust.parent.parent.relative_to(REPO)}")
            tools.append(("Locust", lambda r: run_locust(c, locust, t, cpu, conns, secs, r,
                                                         self.tmp)))
        else:
            self.say("Locust: not available: skipped")
        if shutil.which("hey"):
            tools.append(("hey", lambda r: run_hey(c, t, cpu, conns, secs, r)))
        else:
            self.say("hey: not installed: skipped")
        return tools

    def wait_quiet(self) -> None:
        """Wait (up to ``--wait-idle`` seconds) until the rest of the machine uses less than
        ``--idle-below`` % of one core over a second: other work on a shared machine
        takes CPU from the generator or the target and skews the comparison."""
        limit = self.args.wait_idle
        if limit <= 0:
            return
        deadline = time.monotonic() + limit
        waited = False
        while True:
            meter = OthersMeter(self.target_pids)
            time.sleep(1.0)
            busy = meter.read()
            if busy < self.args.idle_below:
                if waited:
                    self.say(f"  (machine quiet again: others {busy:.0f} %)")
                return
            if time.monotonic() > deadline:
                self.say(f"  (others still use {busy:.0f} % of a core after {limit:g} s: running anyway)")
                return
            if not waited:
                self.say(f"  (others use {busy:.0f} % of a core: waiting up to {limit:g} s for quiet)")
                waited = True

    def _repeat(self, runs: list[tuple[str, Callable[[int], Result]]], repeats: int) -> None:
        for r in range(repeats):
            order = runs if r % 2 == 0 else list(reversed(runs))
            for name, fn in order:
                for attempt in range(1 + self.args.retries):
                    self.wait_quiet()
                    meter = OthersMeter(self.target_pids)
                    res = fn(r + 1)
                    res.extra["others_pct"] = others = meter.read()
                    self.say(res.line())
                    if others <= self.args.noisy_above or attempt == self.args.retries:
                        break
                    self.say(f"  (others used {others:.0f} % of a core during that run: running it "
                             f"again)")
                self.results.setdefault(name, []).append(res)

    def tools_phase(self) -> None:
        self.say("## closed loop, one core each: every tool against the same target")
        self._repeat(self._tools(), self.args.repeats)
        self.say()
        rows = [name for name in ("lab fast", "lab httpx", "wrk", "Locust", "hey") if name in self.results]
        self.table(rows)
        fast = self.results.get("lab fast", [])

        def pairwise(a_name: str, b_name: str) -> list[float]:
            a = {r.repeat: r.rps for r in self.results.get(a_name, [])}
            b = {r.repeat: r.rps for r in self.results.get(b_name, [])}
            return [a[k] / b[k] for k in sorted(a) if k in b and b[k]]

        self.say()
        self.say("ratios, pair by pair (same repeat), median [each pair]:")
        ratios = {}
        for a_name, b_name in (("lab fast", "wrk"), ("lab fast", "Locust"), ("lab fast", "hey"),
                               ("lab httpx", "Locust"), ("lab fast", "lab httpx")):
            pr = pairwise(a_name, b_name)
            ratios[(a_name, b_name)] = pr
            if pr:
                self.say(f"  {a_name} / {b_name}: {median(pr):.2f}×  "
                         f"[{', '.join(f'{x:.2f}' for x in pr)}]")
        self.say()
        for (a_name, b_name), want in ((("lab fast", "wrk"), FAST_VS_WRK),
                                       (("lab fast", "Locust"), FAST_VS_LOCUST),
                                       (("lab httpx", "Locust"), HTTPX_VS_LOCUST)):
            pr = ratios.get((a_name, b_name), [])
            engine = a_name.split()[1]
            self.verdict(f"{engine} engine req/s per core vs {b_name}", f"≥ {want:g}×",
                         f"{median(pr):.2f}×" if pr else "not measured", median(pr) >= want if pr else None)
        self.max_rps = median([r.rps for r in fast]) if fast else None

    def table(self, rows: list[str]) -> None:
        self.say(f"| {'generator':<22} | {'req/s (median)':>14} | {'CPU µs/req':>10} | {'CPU %':>5} "
                 f"| {'p50 ms':>6} | {'p99 ms':>6} | {'errors':>6} |")
        self.say(f"| {'-' * 22} | {'-' * 13}: | {'-' * 9}: | {'-' * 4}: | {'-' * 5}: | {'-' * 5}: "
                 f"| {'-' * 5}: |")
        for name in rows:
            rs = self.results[name]
            self.say(f"| {name:<22} | {median_of(rs, lambda r: r.rps):>14,.0f} "
                     f"| {fmt(median_of(rs, lambda r: r.cpu_us_per_req), 1):>10} "
                     f"| {fmt(median_of(rs, lambda r: r.cpu_pct), 0):>5} "
                     f"| {fmt(median_of(rs, lambda r: r.p50_ms), 2):>6} "
                     f"| {fmt(median_of(rs, lambda r: r.p99_ms), 2):>6} "
                     f"| {sum(r.errors for r in rs):>6} |")

    def floor_phase(self) -> None:
        a, t = self.args, self.target
        assert t is not None
        self.say()
        self.say("## where the fast engine's time goes: the same closed loop without the lab's "
                 "executor and recorder (fast engine loop), and without the engine (bare protocol)")
        runs = [(mode, lambda r, mode=mode: run_loop(
            self.children, t, mode, self.gen_cpu, a.connections, a.seconds, r))
            for mode in ("bare protocol", "fast engine loop")]
        self._repeat(runs, a.repeats)
        self.say()
        rows = [n for n in ("wrk", "bare protocol", "fast engine loop", "lab fast") if n in self.results]
        self.table(rows)
        us = {n: median_of(self.results[n], lambda r: r.cpu_us_per_req) for n in rows}
        steps = (("bare protocol", "wrk", "Python + uvloop + httptools over wrk's C"),
                 ("fast engine loop", "bare protocol", "the engine: a future and an await per "
                  "request, deadline, status, Outcome"),
                 ("lab fast", "fast engine loop", "the worker around it: executor, recorder (a "
                  "count per µs per request, HDR histograms once per interval), in-flight "
                  "accounting, interval reports, loop-lag probe"))
        self.say()
        self.say("CPU per request, step by step (medians):")
        for upper, lower, what in steps:
            if us.get(upper) is not None and us.get(lower) is not None:
                self.say(f"  {upper} − {lower}: {us[upper] - us[lower]:+.1f} µs  ({what})")

    def httpx_phase(self) -> None:
        a, t = self.args, self.target
        assert t is not None
        self.say()
        self.say("## httpx configurations (HttpxEngine.send, closed loop, one core)")
        runs = [(mode, lambda r, mode=mode: run_loop(
            self.children, t, mode, self.gen_cpu, a.connections, a.seconds, r))
            for mode in ("httpx per-connection", "httpx shared-pool")]
        self._repeat(runs, a.repeats)
        self.say()
        self.table([name for name, _ in runs])
        rs = self.results["httpx per-connection"] + self.results["httpx shared-pool"]
        self.say()
        self.say(f"creating one client: {median_of(rs, lambda r: r.extra['shared_ctx_ms']):.3f} ms "
                 f"with the engine's shared SSL context, "
                 f"{median_of(rs, lambda r: r.extra['own_ctx_ms']):.1f} ms with its own "
                 f"(httpx.AsyncClient() loads the CA bundle each time)")

    def open_phase(self) -> None:
        a, t = self.args, self.target
        assert t is not None
        max_rps = getattr(self, "max_rps", None) or a.max_rate
        if not max_rps:
            self.say("open model: no maximum measured (run the tools phase or give --max-rate)")
            return
        if "open" in a.phases:
            self.say()
            self.say(f"## open model, fast engine, 1 worker on core {self.gen_cpu}: rates from the "
                     f"closed-model maximum {max_rps:,.0f} req/s; {a.open_seconds:g} s each; "
                     f"max_in_flight 1000 (the default)")
            self.say(f"| {'rate':>11} | {'steady':>8} | {'error %':>7} | {'all/planned':>11} "
                     f"| {'dropped':>7} | {'CPU %':>5} | {'send lag p50':>12} | {'send lag p99':>12} "
                     f"| {'lag p99 (flag)':>14} | {'latency p99':>11} | others |")
            self.say(f"| {'-' * 10}: | {'-' * 7}: | {'-' * 6}: | {'-' * 10}: | {'-' * 6}: "
                     f"| {'-' * 4}: | {'-' * 11}: | {'-' * 11}: | {'-' * 13}: | {'-' * 10}: | {'-' * 5}: |")
            worst_err, worst_lag = 0.0, 0.0
            for frac in OPEN_LEVELS:
                rate = round(max_rps * frac)
                self.wait_quiet()
                meter = OthersMeter(self.target_pids)
                res = run_lab(self.children, t, lab_load("open", rate, a.open_seconds, "fast", t.path),
                              f"open {frac:.0%}", 1, [self.gen_cpu], send_lag=True)
                self.results[f"open {frac:.0%}"] = [res]
                steady = res.extra["steady_rps"] or res.requests / res.extra["planned_s"]
                err = (steady / rate - 1) * 100
                overall = (res.requests / res.extra["planned_s"] / rate - 1) * 100
                lag99 = res.extra["send_lag_p99_ms"]
                worst_err = max(worst_err, abs(err))
                worst_lag = max(worst_lag, lag99)
                self.say(f"| {f'{frac:.0%} {rate:,}':>11} | {steady:>8,.0f} | {err:>+7.2f} "
                         f"| {overall:>+10.2f}% | {res.extra['dropped']:>7} | {fmt(res.cpu_pct, 0):>5} "
                         f"| {res.extra['send_lag_p50_ms']:>9.3f} ms | {lag99:>9.3f} ms "
                         f"| {res.extra['loop_lag_p99_ms']:>11.3f} ms | {res.p99_ms:>8.2f} ms "
                         f"| {meter.read():>6.0f} |")
            self.say("steady: completions per second over the whole seconds between the first and "
                     "the last; all/planned: every completion (the tail after the end included) "
                     "over the planned count. CPU %: the worker's, of one core. Send lag: sent "
                     "minus intended time, per request (latency minus service time); lag p99 "
                     "(flag): the worker's lag histogram, its 10 ms wake-up probe and every "
                     "request's send lag, which flags a run generator-bound above 10 ms.")
            self.verdict("open-model rate error (25/50/80 %)", f"≤ {OPEN_RATE_ERROR_PCT:g} %",
                         f"{worst_err:.2f} % (worst)", worst_err <= OPEN_RATE_ERROR_PCT)
            self.verdict("open-model send lag p99 (25/50/80 %)", f"≤ {OPEN_LAG_P99_MS:g} ms",
                         f"{worst_lag:.2f} ms (worst)", worst_lag <= OPEN_LAG_P99_MS)
        if "soak" in a.phases and a.soak > 0:
            level = a.soak_level
            rate = round(max_rps * level)
            self.say()
            self.say(f"## memory: fast engine worker, open model at {rate:,} req/s ({level:.0%}) for "
                     f"{a.soak:g} s")
            self.wait_quiet()
            meter = OthersMeter(self.target_pids)
            res = run_lab(self.children, t, lab_load("open", rate, a.soak, "fast", t.path), "soak", 1,
                          [self.gen_cpu], send_lag=True, rss_every_s=1.0)
            others = meter.read()
            rss = res.extra["rss"]
            warm = min(5.0, a.soak / 4)
            early = [x for x in rss if x[0] >= warm]
            mib = 1024 * 1024
            if not early:
                self.say("no RSS reading during the load")
                return
            first, last = early[0], early[-1]
            change = (last[1] / first[1] - 1) * 100
            step = max(1, len(early) // 6)
            trend = ", ".join(f"{ts:.0f} s {v / mib:.1f} MiB/{fds} fds" for ts, v, fds in
                              [*early[::step][:-1], last])
            self.say(f"RSS {res.extra['rss_ready'] / mib:.1f} MiB when ready (before the load); "
                     f"{first[1] / mib:.1f} MiB after {warm:g} s of load (the start); "
                     f"{last[1] / mib:.1f} MiB at {last[0]:.0f} s; change {change:+.1f} %")
            self.say(f"trend (RSS / open file descriptors: mostly connections): {trend}")
            late = res.seconds - res.extra["planned_s"]
            if late > 1:
                self.say(f"the worker fell behind: its last requests went out {late:.0f} s after the "
                         f"planned end (the lab's engine fails a run more than 15 s late)")
            self.say(f"(achieved {res.rps:,.0f} req/s, dropped {res.extra['dropped']}, errors "
                     f"{res.errors}, p99 {res.p99_ms:.2f} ms, send lag p99 "
                     f"{res.extra['send_lag_p99_ms'] or 0:.2f} ms; others used {others:.0f} % of a core "
                     f"meanwhile)")
            self.verdict(f"RSS over {a.soak:g} s at {level:.0%}", f"flat within {RSS_DRIFT_PCT:g} %",
                         f"{change:+.1f} %", abs(change) <= RSS_DRIFT_PCT)

    def workers_phase(self, kind: str) -> None:
        a, t = self.args, self.target
        assert t is not None
        self.say()
        conns = a.connections
        if len(self.spare) >= 2:
            cpus = self.spare[:2]
            self.say(f"## generator processes: fast engine, {conns} VUs in total, 1 process on core "
                     f"{cpus[0]} vs 2 on cores {cpus[0]},{cpus[1]}; target on core {self.target_cpu}")
            target = t
            one: list[int | None] = [cpus[0]]
            two: list[int | None] = list(cpus)
            informational = False
        else:
            self.say(f"## generator processes: skipped: no core left ({len(self.cores)} cores, "
                     f"one taken by the target)")
            if a.no_shared_workers_run:
                self.verdict("N processes (2 vs 1)", f"≥ {2 * SCALE_EFFICIENCY:.1f}×",
                             "skipped: no core left", None)
                return
            self.say(f"informational instead: {kind} with 2 workers and the generators all "
                     f"unpinned, sharing the {len(self.cores)} cores (not a verdict: the target "
                     f"and the generators compete for the same cores)")
            target = start_target(self.children, kind, self.tmp, None, workers=2)
            self.target_pids.append(target.proc.pid)
            one, two = [None], [None, None]
            informational = True
        try:
            runs = [(f"fast ×{len(c)} process{'es' if len(c) > 1 else ''}",
                     lambda r, c=c: run_lab(self.children, target,
                                            lab_load("closed", conns, a.seconds, "fast", target.path),
                                            f"fast ×{len(c)}", r, c))
                    for c in (one, two)]
            self._repeat(runs, a.repeats)
        finally:
            if informational:
                self.children.stop(target.proc)
                self.target_pids.remove(target.proc.pid)
        self.say()
        self.table([name for name, _ in runs])
        r1 = {r.repeat: r.rps for r in self.results[runs[0][0]]}
        r2 = {r.repeat: r.rps for r in self.results[runs[1][0]]}
        pr = [r2[k] / r1[k] for k in r1 if k in r2 and r1[k]]
        self.say(f"2 processes / 1 process, pair by pair: {median(pr):.2f}×  "
                 f"[{', '.join(f'{x:.2f}' for x in pr)}]")
        if informational:
            self.verdict("N processes (2 vs 1)", f"≥ {2 * SCALE_EFFICIENCY:.1f}×",
                         f"skipped: no core left (shared cores: {median(pr):.2f}×)", None)
        else:
            self.verdict("N processes (2 vs 1)", f"≥ {2 * SCALE_EFFICIENCY:.1f}×",
                         f"{median(pr):.2f}×", median(pr) >= 2 * SCALE_EFFICIENCY)

    def summary(self) -> None:
        self.say()
        self.say("## targets (issue 4)")
        self.say(f"| {'measure':<40} | {'target':<16} | {'measured':<44} | verdict |")
        self.say(f"| {'-' * 40} | {'-' * 16} | {'-' * 44} | ------- |")
        for v in self.verdicts:
            self.say(f"| {v.measure:<40} | {v.target:<16} | {v.measured:<44} | {v.status:<7} |")
        self.say(f"load average at the end: {os.getloadavg()[0]:.2f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the lab's load generator (fast and httpx engines) against wrk, "
                    "Locust FastHttpUser and hey on nginx, with the targets of issue 4.",
        epilog="Example (quick): .venv/bin/python benchmarks/generator.py --seconds 5 "
               "--repeats 2 --soak 30")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each closed-loop run (10)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each run, alternating (3)")
    p.add_argument("--connections", type=int, default=50, help="connections / VUs (50)")
    p.add_argument("--open-seconds", type=float, default=None,
                   help="length of each open-model run (default: --seconds)")
    p.add_argument("--soak", type=float, default=300.0,
                   help="seconds of the memory soak at 80%% of the maximum rate (300; 0 skips)")
    p.add_argument("--soak-level", type=float, default=0.8,
                   help="rate of the soak as a fraction of the maximum (0.8)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--max-rate", type=float, default=None,
                   help="the fast engine's maximum req/s, when the tools phase does not run")
    p.add_argument("--target", choices=("auto", "nginx", "uvicorn"), default="auto",
                   help="nginx (auto: when installed) or the uvicorn test target")
    p.add_argument("--target-core", type=int, default=None, help="core for the target (the last)")
    p.add_argument("--gen-core", type=int, default=None, help="core for the generators (the first)")
    p.add_argument("--wait-idle", type=float, default=60.0,
                   help="before each run, wait up to this many seconds for the rest of the "
                        "machine to go quiet (60; 0: never wait)")
    p.add_argument("--idle-below", type=float, default=15.0,
                   help="'quiet': other processes use less than this %% of one core (15)")
    p.add_argument("--noisy-above", type=float, default=25.0,
                   help="a run during which others used more than this %% of one core is run "
                        "again (25)")
    p.add_argument("--retries", type=int, default=2, help="re-runs of a noisy run at most (2)")
    p.add_argument("--no-locust", action="store_true", help="leave Locust out")
    p.add_argument("--no-install", action="store_true",
                   help=f"do not create {LOCUST_VENV.relative_to(REPO)} when it is missing")
    p.add_argument("--no-shared-workers-run", action="store_true",
                   help="without a spare core, skip the informational 1-vs-2-process run")
    args = p.parse_args(argv)
    args.phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    unknown = args.phases - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if args.open_seconds is None:
        args.open_seconds = args.seconds
    if args.seconds <= 0 or args.repeats < 1 or args.connections < 1:
        p.error("--seconds, --repeats and --connections must be positive")
    return args


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        _child_worker("--send-lag" in argv)
        return 0
    if argv[:1] == ["_loop"]:
        _child_loop(json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    from lab.limits import raise_nofile_limit

    raise_nofile_limit()
    if not shutil.which("taskset"):
        print("taskset not found (util-linux): runs are not pinned", file=sys.stderr)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="lab-genbench-"))
    tmp.chmod(0o755)
    try:
        Bench(args, children, tmp).run()
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started", file=sys.stderr, flush=True)
        return 130
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
