"""Runs one RunPlan: owns the target, the generator workers and the sampler; emits events.

The engine knows nothing of Textual or of the database: the store recorder, the headless
progress printer and the TUI are listeners on the events it emits (``lab.events``).
Every process it starts is ended on every exit path before ``RunFinished`` is emitted,
so a listener that sees ``RunFinished`` knows no child of that run is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import platform
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from lab import __version__
from lab.analysis.summary import CpuReading, IntervalCounts, Summary, summarise
from lab.events import (
    ErrorSample,
    Event,
    HostFacts,
    IntervalStats,
    Listener,
    LoadChanged,
    ResourceSample,
    RunFinished,
    RunStarted,
    RunStatus,
    TargetReady,
)
from lab.generators import GeneratorError, GeneratorPool, IntervalMerger
from lab.limits import fd_budget_problem
from lab.monitor import ResourceSampler
from lab.plan import RunPlan
from lab.targets import TargetError, TargetProcess, fetch_stats, wait_ready

START_DELAY_S = 0.1
"""Between the start command and t0, so every worker begins on the same instant."""
FINISH_SLACK_S = 15.0
"""How long past its planned end plus the request deadline a run may take to wrap up."""


def host_facts() -> HostFacts:
    return HostFacts(
        cores=psutil.cpu_count() or 1,
        memory_bytes=int(psutil.virtual_memory().total),
        python=platform.python_version(),
        platform=platform.platform(),
    )


class RunControl:
    """Steers a running run from outside: stop it, or change its load level.

    Safe to use from the event loop the run executes in (the CLI's signal handler, the
    TUI's key bindings).
    """

    def __init__(self) -> None:
        self.stop_requested = asyncio.Event()
        self.stop_reason = "interrupted by user"
        self._levels: asyncio.Queue[float] = asyncio.Queue()

    def stop(self, reason: str = "interrupted by user") -> None:
        """End the run now; it is stored as aborted with the data measured so far."""
        if not self.stop_requested.is_set():
            self.stop_reason = reason
        self.stop_requested.set()

    def set_level(self, total: float) -> None:
        """Hold VUs (closed model) or the arrival rate (open model) at ``total`` from now."""
        self._levels.put_nowait(float(total))

    def take_levels(self) -> list[float]:
        """The level changes asked for since the last call, oldest first."""
        levels = []
        while not self._levels.empty():
            levels.append(self._levels.get_nowait())
        return levels


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended."""

    run_key: str
    status: RunStatus
    reason: str | None
    summary: Summary | None
    target_stats: dict[str, Any] = field(default_factory=dict)


class _Emitter:
    def __init__(self, listeners: Sequence[Listener]) -> None:
        self.listeners = list(listeners)
        self.error: str | None = None

    def __call__(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:  # a failing subscriber must not orphan processes
                if self.error is None:
                    self.error = f"listener {type(listener).__name__} failed: {exc}"


def _counts(iv: IntervalStats) -> IntervalCounts:
    return IntervalCounts(
        t_s=iv.t_s, duration_s=iv.duration_s, ok=iv.ok, errors=iv.errors, dropped=iv.dropped,
        interrupted=iv.interrupted, bytes=iv.bytes, errors_by_class=iv.errors_by_class,
        histogram=iv.histogram, histogram_all=iv.histogram_all,
        histogram_service=iv.histogram_service,
        generator_cpu_percent=iv.generator_cpu_percent, histogram_lag=iv.histogram_lag,
    )


def _reading(s: ResourceSample) -> CpuReading:
    return CpuReading(t_s=s.t_s, role=s.role, pid=s.pid, cpu_percent=s.cpu_percent,
                      cpu_seconds=s.cpu_seconds, rss_bytes=s.rss_bytes)


def _stats_delta(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """The target's counters over the window: numeric fields as end − start."""
    out: dict[str, Any] = dict(end)
    for key in ("cache_hits", "cache_misses"):
        if isinstance(end.get(key), int) and isinstance(start.get(key), int):
            out[key] = end[key] - start[key]
    return out


async def run_plan(
    plan: RunPlan,
    listeners: Sequence[Listener] = (),
    control: RunControl | None = None,
    sample_every_s: float = 1.0,
) -> RunOutcome:
    """Execute one run and report it through ``listeners``.

    Never raises for a failed run (the outcome says ``failed`` with a reason); only
    cancellation propagates, after cleanup. ``RunFinished`` is emitted last, always.
    """
    control = control or RunControl()
    emit = _Emitter(listeners)
    run = _Run(plan, emit, control, sample_every_s)
    return await run.execute()


class _Run:
    def __init__(self, plan: RunPlan, emit: _Emitter, control: RunControl,
                 sample_every_s: float) -> None:
        self.plan = plan
        self.emit = emit
        self.control = control
        self.sample_every_s = sample_every_s
        self.key = uuid.uuid4().hex
        self.target: TargetProcess | None = None
        self.pool: GeneratorPool | None = None
        self.sampler: ResourceSampler | None = None
        self.samples: list[ResourceSample] = []
        self.merger = IntervalMerger(self.key, plan.load.workers or 1)
        self.errors: dict[tuple[str, int | None], list[Any]] = {}
        self.t0 = 0.0
        self.base_url = plan.target.url or ""
        self.stats_start: dict[str, Any] = {}
        self.stats_end: dict[str, Any] = {}
        self.last_stage = -1
        self.level_override: float | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0 if self.t0 else 0.0

    async def execute(self) -> RunOutcome:
        status: RunStatus = "completed"
        reason: str | None = None
        self.emit(RunStarted(self.key, self.plan, time.time(), host_facts(), __version__))
        try:
            status, reason = await self._run()
        except asyncio.CancelledError:
            status, reason = "aborted", "cancelled"
            await asyncio.shield(self._cleanup())
            self._finish(status, reason)
            raise
        except Exception as exc:  # a bug or an OS failure: keep the data, say why
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
        await asyncio.shield(self._cleanup())
        if self.emit.error and status == "completed":
            status, reason = "failed", self.emit.error
        return self._finish(status, reason)

    async def _run(self) -> tuple[RunStatus, str | None]:
        plan, control = self.plan, self.control
        if plan.target.app:
            self.target = TargetProcess(plan.target)
            start = asyncio.create_task(self.target.start())
            stop_wait = asyncio.create_task(control.stop_requested.wait())
            await asyncio.wait({start, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if not start.done():
                start.cancel()
                with contextlib.suppress(asyncio.CancelledError, TargetError):
                    await start
                return "aborted", control.stop_reason
            try:
                start.result()
            except TargetError as exc:
                return "failed", str(exc)
            self.base_url = self.target.url
            self.emit(TargetReady(self.key, self.base_url, self.target.pid, self.target.startup_s))
        else:
            t_wait = time.monotonic()
            async def stopped() -> str | None:
                return "stopped" if control.stop_requested.is_set() else None

            problem = await wait_ready(self.base_url, plan.target.ready_path,
                                       plan.target.ready_timeout, stopped)
            if problem == "stopped":
                return "aborted", control.stop_reason
            if problem:
                return "failed", f"target {problem}"
            self.emit(TargetReady(self.key, self.base_url, None, time.monotonic() - t_wait))
        load = plan.load
        problem = fd_budget_problem(load)  # also raises the limit the workers inherit
        if problem:
            return "failed", problem
        self.pool = GeneratorPool({"base_url": self.base_url, "load": load.model_dump(mode="json"),
                                   "seed": 1, "interval_s": 1.0}, load.workers or 1)
        try:
            await self.pool.start()
        except GeneratorError as exc:
            return "failed", str(exc)
        self.sampler = ResourceSampler(self.key, self.target.pid if self.target else None,
                                       self.pool.pids)
        self.t0 = time.monotonic() + START_DELAY_S
        self.pool.broadcast({"cmd": "start", "t0": self.t0})
        self._sample(0.0)  # priming reading: CPU counters start here
        if load.warmup <= 0:
            self.stats_start = await fetch_stats(self.base_url, plan.target.stats_path)
        helpers = [asyncio.create_task(self._sample_loop())]
        if load.warmup > 0:
            helpers.append(asyncio.create_task(self._stats_at_warmup()))
        try:
            status, reason = await self._consume()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if self.target is None or not self.target.exited:
            self.stats_end = await fetch_stats(self.base_url, plan.target.stats_path)
        self._sample(self.elapsed())
        return status, reason

    async def _stats_at_warmup(self) -> None:
        # The summary's window starts at the first whole interval after the warm-up.
        start_s = math.ceil(self.plan.load.warmup - 1e-9)
        await asyncio.sleep(max(0.0, self.t0 + start_s - time.monotonic()))
        self.stats_start = await fetch_stats(self.base_url, self.plan.target.stats_path)

    def _sample(self, t_s: float) -> None:
        if self.sampler is None:
            return
        for s in self.sampler.sample(t_s):
            self.samples.append(s)
            self.emit(s)

    async def _sample_loop(self) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self.t0 + k * self.sample_every_s - time.monotonic()))
            self._sample(k * self.sample_every_s)
            k += 1

    def _on_interval(self, iv: IntervalStats) -> None:
        if iv.stage != self.last_stage and self.level_override is None:
            self.last_stage = iv.stage
            level = self.plan.load.level_at(iv.t_s)
            self.emit(LoadChanged(self.key, iv.t_s, iv.stage, level, "stage"))
        self.emit(iv)

    async def _consume(self) -> tuple[RunStatus, str | None]:
        """Relay worker reports until every worker is done, or the run must end early."""
        assert self.pool is not None
        pool, control = self.pool, self.control
        load = self.plan.load
        deadline = self.t0 + load.total_duration_s + load.timeout + FINISH_SLACK_S
        done: set[int] = set()
        status: RunStatus = "completed"
        reason: str | None = None
        stopping = False
        stop_deadline = 0.0
        while len(done) < pool.workers:
            now = time.monotonic()
            if not stopping:
                if control.stop_requested.is_set():
                    status, reason = "aborted", control.stop_reason
                elif self.target is not None and self.target.exited:
                    code = await self.target.died()
                    status = "failed"
                    reason = (f"target exited with code {code} during the run; its stderr: "
                              f"{self.target.stderr_tail() or '(empty)'}")
                elif now > deadline:
                    status, reason = "failed", (
                        f"the load generator fell {FINISH_SLACK_S:g}s behind the planned end of "
                        f"the run; it is overloaded (too many VUs or too high a rate for this "
                        f"machine?)")
                if status != "completed":
                    stopping = True
                    stop_deadline = now + 3.0
                    pool.broadcast({"cmd": "stop"})
            elif now > stop_deadline:
                break
            for level in control.take_levels():
                self.level_override = level
                pool.broadcast({"cmd": "level", "value": level})
                self.emit(LoadChanged(self.key, round(self.elapsed(), 3), max(self.last_stage, 0),
                                      level, "user"))
            try:
                m = await asyncio.wait_for(pool.messages.get(), 0.1)
            except TimeoutError:
                continue
            kind = m.msg.get("type")
            if kind == "interval":
                for iv in self.merger.add(m.msg, m.index):
                    self._on_interval(iv)
            elif kind == "done":
                done.add(m.index)
                for cls, st, message, n in m.msg.get("errors", []):
                    entry = self.errors.setdefault((cls, st), [message, 0])
                    entry[1] += int(n)
                for iv in self.merger.finished(m.index):
                    self._on_interval(iv)
            elif kind == "exit" and m.index not in done:
                done.add(m.index)
                for iv in self.merger.finished(m.index):
                    self._on_interval(iv)
                if status == "completed":
                    status, reason = "failed", pool.describe_exit(m.index)
                    stopping = True
                    stop_deadline = time.monotonic() + 3.0
                    pool.broadcast({"cmd": "stop"})
        for iv in self.merger.flush(force=True):
            self._on_interval(iv)
        return status, reason

    async def _cleanup(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.target is not None:
            await self.target.stop()

    def _finish(self, status: RunStatus, reason: str | None) -> RunOutcome:
        for (cls, st), (message, n) in self.errors.items():
            self.emit(ErrorSample(self.key, cls, st, str(message), int(n)))
        target_stats = _stats_delta(self.stats_start, self.stats_end) if self.stats_end else {}
        summary = summarise(
            [_counts(iv) for iv in self.merger.merged],
            [_reading(s) for s in self.samples],
            self.plan.load.warmup,
            target_stats or None,
        )
        if summary is None and self.merger.merged:
            # Aborted inside the warm-up: summarise what there is rather than nothing.
            summary = summarise([_counts(iv) for iv in self.merger.merged],
                                [_reading(s) for s in self.samples], 0.0, target_stats or None)
        self.emit(RunFinished(self.key, status, reason, time.time(), summary, target_stats))
        return RunOutcome(self.key, status, reason, summary, target_stats)
