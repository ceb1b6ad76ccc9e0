"""Do generators on a Dask cluster cost throughput? ``--workers 2`` against ``--cluster local:2``.

The same closed-model load (``--vus`` VUs, no think time, the ``fast`` client engine, a
``--warmup`` excluded from the figures) goes through the real ``lab run EXPERIMENT
--format json`` command twice per pair: once with two local generator worker processes
(``--workers 2``, reports on stdout pipes) and once on a local Dask cluster of two workers
(``--cluster local:2``, reports as Dask events through the scheduler), ``--pairs`` times in
ABBA order (local, dask, dask, local, ...) so drift on a shared machine hits both alike.
The target is nginx (the Debian package; one worker process, ``return 200 "ok"``, from a
config of its own in a temporary directory), which serves about twice what the lab's fast
engine sends per core, so the generators, not the target, set the pace; without nginx the
lab's uvicorn test target stands in, labelled as such.

Figures, per run and as medians:

- req/s: the run's ``throughput_rps`` (goodput over the measured window, from its JSON);
  the verdict is the median of the pairs' dask / local ratios against issue 15's target,
  the Dask path within 5 % of the local one;
- CPU per request: of the generator processes (the run's ``generator_cpu_s_per_1k``; for
  dask each Dask worker process whole, its event-loop thread included), and of every
  process of the ``lab run`` (the lab, the generators, the Dask scheduler and workers)
  over the measured intervals. Less sensitive to a busy machine than req/s: on a shared
  2-core machine it is the steadier comparison;
- report latency, worker → lab: how long after the end of an interval on the generator's
  clock its report reached the engine (the moment the engine hands it to the interval
  merger), and per interval how long after the lab's planned end the later of the two
  reports did (when the merged interval can be shown). The last interval of a run is left
  out: it is reported once the load has drained, not at a boundary. For dask the report
  latency is split into legs that add up (→ the scheduler's stamp on the event, → the lab's
  Dask client thread, → the engine's loop), and the alignment is printed: each generator's
  ``t0`` minus the lab's, from the two clock-offset estimates Dask's conversion uses (0 is
  right here: one machine, one clock). Printed beside it: how long the engine's own
  resource sampling, which runs at the interval ends too, kept its loop busy.

These figures need hooks that ``lab run`` has no use for, installed by this script in the
``lab run`` process it starts (``_lab`` mode), all read-only: the engine's ``t0`` (from
the ``Start`` command the pool broadcasts) and, for dask, the clock offsets; the arrival
time of each report at ``IntervalMerger.add``; for dask the scheduler's time stamp on each
event (``ClusterPool._on_report``); the duration of ``_Run._sample``; and a listener on the
engine's events that reads the CPU of the process tree at each merged interval. The
command, its options and its output are ``lab run``'s own.

Before each run it waits (up to ``--wait-idle`` seconds) for the rest of the machine to go
quiet; a run during which other processes used more than ``--noisy-above`` % of a core is
run again (``--retries``), and a pair with a run that stayed noisy is left out of the
ratios and the verdict (SKIP when no pair was quiet). Every process it starts runs in its
own session and is ended on every exit path (normal end, error, Ctrl-C, SIGTERM); ``lab
run`` ends its own generators and Dask cluster. Run from the repository root (about 70 s
on a quiet machine; it waits for quiet up to ``--wait-idle`` before each run)::

    .venv/bin/python benchmarks/cluster.py                       # 3 pairs of 8 s runs
    .venv/bin/python benchmarks/cluster.py --pairs 3 --seconds 8 --out benchmarks/results-cluster.txt

Not a test: its figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(SCRIPT.parent))

from generator import Children, OthersMeter, _raise_interrupt, start_target  # noqa: E402

DASK_VS_LOCAL = 0.95
"""Issue 15: the Dask path within 5 % of the local one in req/s."""
LAB_GRACE_S = 20.0
"""How long a ``lab run`` has to end its generators and cluster after SIGTERM."""

PATHS = {"local": ("--workers", "2"), "dask": ("--cluster", "local:2")}
LABELS = {"local": "local  --workers 2", "dask": "dask   --cluster local:2"}

EXPERIMENT = """\
[experiment]
title = "cluster benchmark: local generator processes against a local Dask cluster"

[target]
url = "{base_url}"

[load]
model = "closed"
vus = {vus}
duration = "{seconds:g}s"
warmup = "{warmup:g}s"
think_time = "0s"
timeout = "5s"
client = "fast"
requests = [{{ path = "{path}" }}]
"""


# == the hooks, in the `lab run` process ===================================================

def _child_lab(timings_path: str, lab_argv: list[str]) -> None:
    """Run ``lab <lab_argv>`` in this process with the timing hooks; write what they saw to
    ``timings_path`` (JSON) whatever way the command ends."""
    from lab import engine
    from lab.events import GeneratorsReady, IntervalStats
    from lab.load.wire import Start
    from lab.pool import GeneratorPool, IntervalMerger

    seen: dict[str, Any] = {"t0": None, "reports": [], "dask": [], "cpu_by_worker": [],
                            "wall_minus_mono": time.time() - time.monotonic(),
                            "lab_offset_s": None, "worker_offset_ms": [], "sample_ms": [],
                            "tree_cpu": []}
    pools: list[type] = [GeneratorPool]
    if "--cluster" in lab_argv:
        from lab.cluster.pool import ClusterPool

        pools.append(ClusterPool)
        on_report = ClusterPool._on_report

        def spy_report(self: Any, event: tuple[float, Any]) -> None:
            wall, mono = time.time(), time.monotonic()
            stamp, payload = event
            if isinstance(payload, dict):
                seen["dask"].append((payload.get("i"), stamp, wall, mono, payload.get("line", "")))
            on_report(self, event)

        ClusterPool._on_report = spy_report  # type: ignore[method-assign]
    for cls in pools:
        def spy_broadcast(self: Any, msg: Any, _original: Any = cls.broadcast) -> None:
            if isinstance(msg, Start) and seen["t0"] is None:
                seen["t0"] = msg.t0
                seen["lab_offset_s"] = getattr(self, "_offset_s", None)
            _original(self, msg)

        cls.broadcast = spy_broadcast  # type: ignore[attr-defined]
    add = IntervalMerger.add

    def spy_add(self: IntervalMerger, report: Any, worker: int = -1) -> Any:
        seen["reports"].append((report.index, worker, time.monotonic()))
        return add(self, report, worker)

    IntervalMerger.add = spy_add  # type: ignore[method-assign]
    sample = engine._Run._sample

    def spy_sample(self: Any, t_s: float) -> None:
        began = time.monotonic()
        sample(self, t_s)
        seen["sample_ms"].append((t_s, (time.monotonic() - began) * 1000))

    engine._Run._sample = spy_sample  # type: ignore[method-assign]
    run_plan = engine.run_plan

    import psutil

    me = psutil.Process()

    def tree_cpu_s() -> float:
        """CPU seconds of this process and every process under it (generators, the Dask
        scheduler and workers), so far."""
        total = 0.0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def on_event(event: Any) -> None:
        if isinstance(event, IntervalStats):
            seen["cpu_by_worker"].append((event.t_s, list(event.generator_cpu_by_worker)))
            seen["tree_cpu"].append((event.t_s, event.requests, tree_cpu_s()))
        elif isinstance(event, GeneratorsReady):
            seen["worker_offset_ms"] = [g.clock_offset_ms for g in event.generators]

    async def spy_run_plan(plan: Any, listeners: Sequence[Any] = (), *args: Any, **kwargs: Any) -> Any:
        return await run_plan(plan, [*listeners, on_event], *args, **kwargs)

    engine.run_plan = spy_run_plan  # type: ignore[assignment]
    from lab.cli import main as lab_main

    try:
        lab_main(lab_argv)
    finally:
        dask = []
        if seen["dask"]:
            from lab.load.wire import IntervalReport, WireError, decode_report

            for i, stamp, wall, mono, line in seen["dask"]:
                with contextlib.suppress(WireError):
                    msg = decode_report(line)
                    if isinstance(msg, IntervalReport):
                        dask.append((msg.index, i, stamp, wall, mono))
        seen["dask"] = dask
        Path(timings_path).write_text(json.dumps(seen))


# == one run ===============================================================================

@dataclass
class Run:
    path: str
    """``local`` or ``dask``."""
    pair: int
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    gen_us_per_req: float | None
    """The generator processes' CPU per request (the run's ``generator_cpu_s_per_1k``)."""
    lab_us_per_req: float | None
    """CPU per request of every process of the ``lab run``: the lab, its generators and, for
    dask, the scheduler and the workers whole (``tree_us_per_request``)."""
    gen_cpu_pct: list[float]
    """Each generator's median CPU over the measured intervals (% of one core)."""
    wall_s: float
    others_pct: float = 0.0
    noisy: bool = False
    """Other processes used more than ``--noisy-above`` % of a core meanwhile."""
    report_ms: list[float] = field(default_factory=list)
    interval_ms: list[float] = field(default_factory=list)
    legs_ms: dict[str, list[float]] = field(default_factory=dict)
    alignment_ms: list[float] = field(default_factory=list)
    """See ``Latencies``."""
    sampler_ms: list[float] = field(default_factory=list)
    """How long the engine's resource sampling took at each interval boundary."""


@dataclass(frozen=True)
class Latencies:
    """What a run's timings say about its reports, in ms."""

    report_ms: list[float]
    """Each report: its arrival at the engine minus the end of its interval on the
    generator's clock (worker → lab)."""
    interval_ms: list[float]
    """Each interval: its later report's arrival minus the lab's planned end (when the
    merged interval exists; includes the alignment)."""
    legs_ms: dict[str, list[float]]
    """dask: each report's way, leg by leg (they add up to ``report_ms``)."""
    alignment_ms: list[float]
    """dask: each generator's ``t0`` minus the lab's."""


def latencies(timings: dict[str, Any], seconds: float, interval_s: float = 1.0) -> Latencies:
    """The report latencies of a ``_lab`` timings file; the last interval (reported after
    the load drained, not at a boundary) is left out.

    A local generator starts on the lab's ``t0`` as is (one monotonic clock). A Dask one
    converts it twice, with the lab's estimate of its offset from the scheduler's clock and
    the worker's own (``scheduler_delay``, as its ``Ready`` gave it): its ``t0`` is the
    lab's plus ``lab_offset + worker clock_offset`` (0 with perfect estimates: every clock
    here is this machine's).
    """
    t0 = timings["t0"]
    if t0 is None:
        return Latencies([], [], {}, [])
    last = max(0, math.ceil(seconds / interval_s) - 1)
    lab_offset = timings["lab_offset_s"] or 0.0
    align = [lab_offset + ms / 1000 for ms in timings["worker_offset_ms"] if ms is not None]

    def end(index: int, worker: int = -1) -> float:
        """The interval's end on the engine's clock: the lab's plan, or (``worker`` ≥ 0)
        the generator's."""
        shift = align[worker] if 0 <= worker < len(align) else 0.0
        return float(t0) + (index + 1) * interval_s + shift

    per_report: list[float] = []
    per_interval: dict[int, float] = {}
    for index, worker, mono in timings["reports"]:
        if index >= last:
            continue
        per_report.append((mono - end(index, worker)) * 1000)
        per_interval[index] = max(per_interval.get(index, -math.inf), (mono - end(index)) * 1000)
    legs: dict[str, list[float]] = {}
    arrivals = {(index, worker): mono for index, worker, mono in timings["reports"]}
    for index, worker, stamp, wall, mono in timings["dask"]:
        if index >= last or (index, worker) not in arrivals:
            continue
        for name, ms in (("generator's interval end → scheduler",
                          (stamp - (end(index, worker) + timings["wall_minus_mono"])) * 1000),
                         ("scheduler → lab's Dask thread", (wall - stamp) * 1000),
                         ("Dask thread → engine loop", (arrivals[(index, worker)] - mono) * 1000)):
            legs.setdefault(name, []).append(ms)
    return Latencies(per_report, [per_interval[k] for k in sorted(per_interval)], legs,
                     [x * 1000 for x in align] if timings["dask"] else [])


def run_lab(children: Children, path: str, pair: int, experiment: Path, tmp: Path,
            seconds: float, warmup: float) -> Run:
    """One ``lab run`` (``path``: local or dask) in a child process with the timing hooks."""
    db = tmp / "results.db"
    timings = tmp / f"timings-{path}-{pair}.json"
    out = tmp / f"stdout-{path}-{pair}.json"
    err = tmp / f"stderr-{path}-{pair}.txt"
    argv = [sys.executable, str(SCRIPT), "_lab", str(timings), "run", str(experiment), *PATHS[path],
            "--format", "json", "--quiet", "--db", str(db)]
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = children.spawn(argv, cwd=REPO, stdout=stdout, stderr=stderr)
        try:
            code, _cpu = children.wait(proc, seconds + 120)
        except BaseException:
            children.stop(proc, LAB_GRACE_S)
            raise
    wall = time.monotonic() - started
    text = out.read_text()
    try:
        report = json.loads(text)["runs"][0]
    except (ValueError, KeyError, IndexError):
        report = None
    if code != 0 or report is None or report["status"] != "completed":
        why = report and (report["status"], report["reason"])
        raise RuntimeError(f"lab run ({path}) exited with {code} {why or ''}: "
                           f"{err.read_text().strip()[-1500:]}")
    s = report["summary"]
    seen = json.loads(timings.read_text())
    lat = latencies(seen, seconds)
    first, last = max(1, math.ceil(warmup)), math.ceil(seconds) - 1
    # Each generator's CPU over the measured intervals (after the warm-up, before the last).
    cpus: dict[int, list[float]] = {}
    for t_s, by_worker in seen["cpu_by_worker"]:
        if first <= t_s < last:
            for w, pct in enumerate(by_worker):
                if pct is not None:
                    cpus.setdefault(w, []).append(pct)
    gen = s.get("generator_cpu_s_per_1k")
    return Run(path=path, pair=pair, rps=s["throughput_rps"], requests=s["requests"], errors=s["errors"],
               p50_ms=s["latency_ms"]["p50"], p99_ms=s["latency_ms"]["p99"],
               gen_us_per_req=gen * 1000 if gen is not None else None,
               lab_us_per_req=tree_us_per_request(seen["tree_cpu"], first, last),
               gen_cpu_pct=[statistics.median(v) for _, v in sorted(cpus.items())], wall_s=wall,
               report_ms=lat.report_ms, interval_ms=lat.interval_ms, legs_ms=lat.legs_ms,
               alignment_ms=lat.alignment_ms,
               sampler_ms=[ms for t_s, ms in seen["sample_ms"] if 0 < t_s <= last and t_s == round(t_s)])


def tree_us_per_request(rows: list[tuple[float, int, float]], first: int, last: int) -> float | None:
    """CPU µs per request of the whole ``lab run`` process tree over intervals ``first`` to
    ``last`` − 1: the CPU read when interval ``first`` − 1 was merged to the one read when
    ``last`` − 1 was, over the requests of the intervals in between."""
    by_t = {round(t_s): (requests, cpu_s) for t_s, requests, cpu_s in rows}
    if first - 1 not in by_t or last - 1 not in by_t:
        return None
    requests = sum(by_t[k][0] for k in range(first, last) if k in by_t)
    cpu_s = by_t[last - 1][1] - by_t[first - 1][1]
    return cpu_s / requests * 1e6 if requests else None


# == figures ===============================================================================

def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile, nearest rank (p in 0..100); NaN when empty."""
    if not values:
        return math.nan
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


class Bench:
    def __init__(self, args: argparse.Namespace, children: Children, tmp: Path,
                 out: TextIO | None) -> None:
        self.args = args
        self.children = children
        self.tmp = tmp
        self.out = out
        self.runs: list[Run] = []
        """The run of each path in each pair (the last attempt)."""
        self.attempts: list[Run] = []
        """Every run, re-runs of noisy ones included."""
        self.target_pids: list[int] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def wait_quiet(self) -> None:
        """Wait (up to ``--wait-idle`` s) until other processes use less than
        ``--idle-below`` % of one core over a second."""
        deadline = time.monotonic() + self.args.wait_idle
        waited = False
        while self.args.wait_idle > 0:
            meter = OthersMeter(self.target_pids)
            time.sleep(1.0)
            busy = meter.read()
            if busy < self.args.idle_below:
                if waited:
                    self.say(f"  (machine quiet again: others {busy:.0f} %)")
                return
            if time.monotonic() > deadline:
                self.say(f"  (others still use {busy:.0f} % of a core after {self.args.wait_idle:g} s: "
                         f"running anyway)")
                return
            if not waited:
                self.say(f"  (others use {busy:.0f} % of a core: waiting up to {self.args.wait_idle:g} s)")
                waited = True

    def run(self) -> None:
        a = self.args
        kind = a.target if a.target != "auto" else ("nginx" if shutil.which("nginx") else "uvicorn")
        target = start_target(self.children, kind, self.tmp, None, workers=1)
        self.target_pids.append(target.proc.pid)
        experiment = self.tmp / "cluster-bench.toml"
        experiment.write_text(EXPERIMENT.format(base_url=target.base_url, vus=a.vus, seconds=a.seconds,
                                                warmup=a.warmup, path=target.path))
        import distributed

        from lab import __version__

        cpu_model = next((line.split(":", 1)[1].strip() for line in
                          Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("model name")), "?")
        self.say(f"# cluster benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        self.say(f"command:  python benchmarks/cluster.py {' '.join(sys.argv[1:])}")
        self.say(f"machine:  {os.cpu_count()} cores ({cpu_model}), {platform.platform()}, Python "
                 f"{platform.python_version()}, lab {__version__}, distributed "
                 f"{distributed.__version__}, load average {os.getloadavg()[0]:.2f} at start")
        self.say(f"target:   {target.label}, {target.url}")
        self.say(f"load:     closed model, {a.vus} VUs in total, fast engine, {a.seconds:g} s per run "
                 f"({a.warmup:g} s warm-up excluded), {a.pairs} pairs in ABBA order; nothing pinned")
        self.say()
        for pair in range(a.pairs):
            order = ("local", "dask") if pair % 2 == 0 else ("dask", "local")
            for path in order:
                self.runs.append(self.measure(path, pair, experiment))
        self.report()

    def measure(self, path: str, pair: int, experiment: Path) -> Run:
        a = self.args
        for attempt in range(1 + a.retries):
            self.wait_quiet()
            meter = OthersMeter(self.target_pids)
            run = run_lab(self.children, path, pair, experiment, self.tmp, a.seconds, a.warmup)
            run.others_pct = meter.read()
            run.noisy = run.others_pct > a.noisy_above
            self.attempts.append(run)
            again = run.noisy and attempt < a.retries
            self.say(self.line(run) + ("  NOISY: again" if again else "  NOISY" if run.noisy else ""))
            if not run.noisy:
                break
        return run

    @staticmethod
    def line(r: Run) -> str:
        cpu = "/".join(f"{c:.0f}" for c in r.gen_cpu_pct) or "-"
        align = "/".join(f"{x:+.0f}" for x in r.alignment_ms) if r.alignment_ms else "0"
        return (f"  [{r.pair + 1}] {LABELS[r.path]:<25} {r.rps:>8,.0f} req/s  p50 {r.p50_ms:5.2f}  "
                f"p99 {r.p99_ms:5.2f} ms  err {r.errors}  CPU µs/req: gen {fmt(r.gen_us_per_req)}, "
                f"all {fmt(r.lab_us_per_req)}  gen CPU {cpu:>7} %  report latency p50 "
                f"{median(r.report_ms):5.1f}  p95 {pct(r.report_ms, 95):5.1f} ms  alignment "
                f"{align:>7} ms  others {r.others_pct:3.0f} %  wall {r.wall_s:4.1f} s")

    def report(self) -> None:
        by = {p: [r for r in self.runs if r.path == p] for p in PATHS}
        self.say()
        self.say("## throughput, CPU per request and report latency (medians over the runs; "
                 "latencies over every report of every run)")
        self.say(f"| {'path':<25} | {'req/s':>8} | {'p99 ms':>6} | {'gen µs/req':>10} | "
                 f"{'all µs/req':>10} | {'gen CPU %':>9} | {'report p50':>10} | {'report p95':>10} | "
                 f"{'report max':>10} | {'interval p50':>12} | {'interval p95':>12} |")
        self.say(f"| {'-' * 25} | {'-' * 7}: | {'-' * 5}: | {'-' * 9}: | {'-' * 9}: | {'-' * 8}: | "
                 f"{'-' * 9}: | {'-' * 9}: | {'-' * 9}: | {'-' * 11}: | {'-' * 11}: |")
        for p, runs in by.items():
            reports = [x for r in runs for x in r.report_ms]
            intervals = [x for r in runs for x in r.interval_ms]
            gen = [r.gen_us_per_req for r in runs if r.gen_us_per_req is not None]
            every = [r.lab_us_per_req for r in runs if r.lab_us_per_req is not None]
            cpu = [c for r in runs for c in r.gen_cpu_pct]
            self.say(f"| {LABELS[p]:<25} | {median([r.rps for r in runs]):>8,.0f} | "
                     f"{median([r.p99_ms for r in runs]):>6.2f} | {median(gen):>10.1f} | "
                     f"{median(every):>10.1f} | {median(cpu):>9.0f} | {median(reports):>7.1f} ms | "
                     f"{pct(reports, 95):>7.1f} ms | {max(reports, default=math.nan):>7.1f} ms | "
                     f"{median(intervals):>9.1f} ms | {pct(intervals, 95):>9.1f} ms |")
        self.say("req/s: goodput over the measured window. CPU µs/req: gen, the generator processes "
                 "(the lab's sampler; for dask each Dask worker process whole); all, every process "
                 "of the lab run (the lab, the generators, the Dask scheduler and workers), over the "
                 "measured intervals. gen CPU %: each generator's own interval figure, of one core. "
                 "report: a generator's report at the engine minus the end of its interval on its "
                 "own clock (worker → lab); interval: the later report of an interval minus the "
                 "lab's planned end (when the merged interval exists; includes the alignment).")
        legs: dict[str, list[float]] = {}
        for r in by["dask"]:
            for name, values in r.legs_ms.items():
                legs.setdefault(name, []).extend(values)
        if legs:
            self.say("dask report latency, leg by leg (they add up; p50 / p95): "
                     + "; ".join(f"{name} {median(v):.1f} / {pct(v, 95):.1f} ms" for name, v in legs.items()))
        align = [x for r in self.attempts if r.path == "dask" for x in r.alignment_ms]
        if align:
            self.say(f"dask alignment, every run (re-runs included): each generator's t0 minus the lab's, "
                     f"from Dask's clock-offset estimates (every clock here is this machine's, so 0 is "
                     f"right): {', '.join(f'{x:+.1f}' for x in align)} ms; its intervals and the lab's "
                     f"planned ones differ by up to {max(abs(x) for x in align):.1f} ms")
        busy = [x for r in self.runs for x in r.sampler_ms]
        self.say(f"both: the engine's resource sampling (psutil readings, each stored in SQLite) runs at "
                 f"the interval ends too and took {median(busy):.1f} ms (p50) / {pct(busy, 95):.1f} ms "
                 f"(p95) of the engine's loop: reports arriving meanwhile wait for it")

        # A pair with a run that stayed noisy is left out of the ratios: another process's
        # burst during one of its runs says nothing about the two paths.
        noisy = {r.pair for r in self.runs if r.noisy}
        quiet = [k for k in range(self.args.pairs) if k not in noisy]

        def pairwise(key: Any) -> list[float]:
            local = {r.pair: key(r) for r in by["local"]}
            return [key(r) / local[r.pair] for r in by["dask"]
                    if r.pair in quiet and key(r) is not None and local.get(r.pair)]

        rps = pairwise(lambda r: r.rps)
        ratio = median(rps)
        every_ratio = median(pairwise(lambda r: r.lab_us_per_req))
        self.say()
        left_out = (f"; pair{'s' if len(noisy) > 1 else ''} {', '.join(str(k + 1) for k in sorted(noisy))} "
                    f"left out, NOISY" if noisy else "")
        self.say(f"dask / local, pair by pair ({len(quiet)} of {self.args.pairs} pairs quiet{left_out}"
                 f"): req/s {ratio:.3f}×  [{', '.join(f'{x:.3f}' for x in rps)}]; CPU per request of "
                 f"the whole lab run {every_ratio:.3f}×  "
                 f"[{', '.join(f'{x:.3f}' for x in pairwise(lambda r: r.lab_us_per_req))}], of the "
                 f"generators {median(pairwise(lambda r: r.gen_us_per_req)):.3f}×")
        dask_reports = [x for r in by["dask"] for x in r.report_ms]
        local_reports = [x for r in by["local"] for x in r.report_ms]
        self.say()
        self.say("## target (issue 15)")
        self.say(f"| {'measure':<38} | {'target':<10} | {'measured':<40} | verdict |")
        self.say(f"| {'-' * 38} | {'-' * 10} | {'-' * 40} | ------- |")
        verdict = "SKIP" if not rps else "PASS" if ratio >= DASK_VS_LOCAL else "FAIL"
        plural = "s" if len(rps) != 1 else ""
        measured = f"{ratio:.3f}× ({len(rps)} quiet pair{plural})" if rps else "no quiet pair: machine busy"
        self.say(f"| {'req/s, dask / local (median pair)':<38} | {f'≥ {DASK_VS_LOCAL:.2f}×':<10} | "
                 f"{measured:<40} | {verdict:<7} |")
        for name, values in (("report latency worker → lab, dask", dask_reports),
                             ("report latency worker → lab, local", local_reports)):
            self.say(f"| {name:<38} | {'printed':<10} | "
                     f"{f'p50 {median(values):.1f} ms, p95 {pct(values, 95):.1f} ms':<40} | {'INFO':<7} |")
        self.say(f"load average at the end: {os.getloadavg()[0]:.2f}")


def fmt(value: float | None) -> str:
    return f"{value:4.1f}" if value is not None else "   -"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="The same closed-model load through lab run --workers 2 and --cluster local:2, "
                    "alternating: req/s (the Dask path within 5 %) and report latency worker → lab.",
        epilog="Example: .venv/bin/python benchmarks/cluster.py --pairs 3 --seconds 8 "
               "--out benchmarks/results-cluster.txt")
    p.add_argument("--pairs", type=int, default=3, help="pairs of runs, ABBA order (3)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each run (8)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds excluded at the start (1)")
    p.add_argument("--vus", type=int, default=50, help="VUs in total, split over the 2 generators (50)")
    p.add_argument("--target", choices=("auto", "nginx", "uvicorn"), default="auto",
                   help="nginx (auto: when installed) or the uvicorn test target")
    p.add_argument("--wait-idle", type=float, default=20.0,
                   help="before each run, wait up to this many seconds for the rest of the machine "
                        "to go quiet (20; 0: never wait)")
    p.add_argument("--idle-below", type=float, default=15.0,
                   help="'quiet': other processes use less than this %% of one core (15)")
    p.add_argument("--noisy-above", type=float, default=25.0,
                   help="a run during which others used more than this %% of one core is run again (25)")
    p.add_argument("--retries", type=int, default=1, help="re-runs of a noisy run at most (1)")
    p.add_argument("--out", type=Path, default=None, help="also write the output to this file")
    args = p.parse_args(argv)
    if args.pairs < 1 or args.seconds <= 0 or args.vus < 2 or not 0 <= args.warmup < args.seconds - 1:
        p.error("--pairs ≥ 1, --seconds > 0, --vus ≥ 2 and 0 ≤ --warmup < --seconds − 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_lab"]:
        _child_lab(argv[1], argv[2:])
        return 0
    args = parse_args(argv)
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="lab-clusterbench-"))
    tmp.chmod(0o755)  # nginx's worker runs as nobody when we are root
    out = args.out.open("w") if args.out else None
    try:
        Bench(args, children, tmp, out).run()
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started", file=sys.stderr, flush=True)
        return 130
    except RuntimeError as exc:
        print(f"cluster benchmark: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for proc in list(reversed(children.procs)):
            with contextlib.suppress(Exception):
                children.stop(proc, LAB_GRACE_S)
        if out is not None:
            out.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
