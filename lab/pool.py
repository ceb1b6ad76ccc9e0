"""The pool of generator worker processes of one run, and the merge of their intervals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections import deque
from dataclasses import dataclass

from lab.errors import GeneratorError
from lab.events import GeneratorInfo, IntervalStats
from lab.load.histogram import LatencyHistogram
from lab.load.wire import (
    Done,
    IntervalReport,
    Ready,
    SetLevel,
    Start,
    Stop,
    WireError,
    WorkerConfig,
    decode_report,
    encode,
)
from lab.procs import spawn, terminate_tree

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Exited:
    """The worker's stdout closed and the process has exited (not a line on the wire)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """The worker sent a line that is not a message of ``lab.load.wire``."""

    error: WireError


@dataclass(frozen=True, slots=True)
class WorkerMessage:
    """One thing a worker said, in the order it said it."""

    index: int
    """Which worker, 0 … workers − 1."""
    msg: Ready | IntervalReport | Done | Exited | Malformed


class GeneratorPool:
    """Starts ``workers`` generator processes and relays their reports (``lab.load.wire``).

    Args:
        config: the worker config; each worker gets it with its own ``index`` and the
            pool's ``workers``.
        workers: how many processes share the load.
    """

    start_delay_s = 0.1
    """Between the start command and t0, so every worker begins on the same instant."""
    source = "local"
    cluster: str | None = None
    scheduler: str | None = None

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.generators: list[GeneratorInfo] = []
        """Each worker's host and pid, once ready."""
        self.procs: list[asyncio.subprocess.Process] = []
        self.messages: asyncio.Queue[WorkerMessage] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self._tails: list[deque[str]] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def start(self) -> None:
        """Spawn every worker and wait until each says it is ready.

        Raises:
            GeneratorError: a worker exited or did not answer within 30 s.
        """
        for i in range(self.workers):
            proc = await spawn([sys.executable, "-m", "lab.load.worker"],
                               stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                               stderr=asyncio.subprocess.PIPE)
            self.procs.append(proc)
            tail: deque[str] = deque(maxlen=10)
            self._tails.append(tail)
            self._readers.append(asyncio.create_task(self._read(i, proc)))
            self._readers.append(asyncio.create_task(self._read_stderr(proc, tail)))
            self._send(i, dataclasses.replace(self.config, index=i, workers=self.workers))
        ready = 0
        self.generators = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while ready < self.workers:
            try:
                m = await asyncio.wait_for(self.messages.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise GeneratorError("generator workers did not start within 30 s") from None
            if isinstance(m.msg, Ready):
                ready += 1
                pid = m.msg.pid or self.procs[m.index].pid
                self.generators.append(GeneratorInfo(m.index, m.msg.host, pid))
            elif isinstance(m.msg, Exited):
                raise GeneratorError(self.describe_exit(m.index))
            elif isinstance(m.msg, Malformed):
                raise GeneratorError(self.describe_malformed(m.index, m.msg.error))
        self.generators.sort(key=lambda g: g.index)

    def describe_exit(self, index: int) -> str:
        code = self.procs[index].returncode
        tail = " | ".join(self._tails[index]) or "(no stderr)"
        return f"generator worker {index} exited with code {code}: {tail}"

    @staticmethod
    def describe_malformed(index: int, error: WireError) -> str:
        return f"generator worker {index} sent a {error}"

    def _send(self, index: int, msg: WorkerConfig | Start | SetLevel | Stop) -> None:
        proc = self.procs[index]
        if proc.stdin is None or proc.stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(encode(msg))

    def broadcast(self, msg: Start | SetLevel | Stop) -> None:
        for i in range(len(self.procs)):
            self._send(i, msg)

    async def _read(self, index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                msg: Ready | IntervalReport | Done | Malformed = decode_report(line)
            except WireError as exc:
                msg = Malformed(exc)
            await self.messages.put(WorkerMessage(index, msg))
        await proc.wait()
        await self.messages.put(WorkerMessage(index, Exited()))

    @staticmethod
    async def _read_stderr(proc: asyncio.subprocess.Process, tail: deque[str]) -> None:
        assert proc.stderr is not None
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                tail.append(text)

    async def close(self) -> None:
        """End every worker (stop politely, then SIGTERM/SIGKILL the stragglers)."""
        self.broadcast(Stop())
        for proc in self.procs:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in self.procs)), 3.0)
        await asyncio.gather(*(terminate_tree(p, grace_s=2.0) for p in self.procs))
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


class IntervalMerger:
    """Collects per-worker interval reports and merges each index once all have it.

    Percentiles of a merged interval come from the merged histogram, never from an
    average of the workers' percentiles.
    """

    def __init__(self, run_key: str, workers: int) -> None:
        self.run_key = run_key
        self.workers = workers
        self._pending: dict[int, dict[int, IntervalReport]] = {}
        self._finished: set[int] = set()
        self.merged: list[IntervalStats] = []

    def add(self, report: IntervalReport, worker: int = -1) -> list[IntervalStats]:
        """Add one worker's report; returns the intervals completed by it, in order."""
        bucket = self._pending.setdefault(report.index, {})
        bucket[worker if worker >= 0 else len(bucket)] = report
        return self.flush()

    def finished(self, worker: int) -> list[IntervalStats]:
        """A worker has sent everything it will send (done, or exited)."""
        self._finished.add(worker)
        return self.flush()

    def flush(self, force: bool = False) -> list[IntervalStats]:
        """Merge, in order, every pending index that each worker has either reported or
        will never report (it finished); with ``force``, everything pending."""
        out = []
        for index in sorted(self._pending):
            bucket = self._pending[index]
            complete = all(w in bucket or w in self._finished for w in range(self.workers))
            if not complete and not force:
                break
            del self._pending[index]
            stats = self._merge(bucket)
            self.merged.append(stats)
            out.append(stats)
        return out

    def _merge(self, by_worker: dict[int, IntervalReport]) -> IntervalStats:
        reports = list(by_worker.values())
        ok_h, all_h, svc_h = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
        lag_h = LatencyHistogram()
        by_class: dict[str, int] = {}
        cpus = [r.cpu_percent for r in reports if r.cpu_percent is not None]
        for r in reports:
            lag_h.merge_encoded(r.histogram_lag.encode())
            ok_h.merge_encoded(r.histogram.encode())
            all_h.merge_encoded(r.histogram_all.encode())
            svc_h.merge_encoded(r.histogram_service.encode())
            for cls, n in r.errors_by_class.items():
                by_class[cls] = by_class.get(cls, 0) + n
        ok = sum(r.ok for r in reports)
        errors = sum(r.errors for r in reports)
        has = ok_h.count > 0
        duration = max(r.duration_s for r in reports)
        # Workers' means add up; in a last interval of slightly different lengths each
        # worker's mean is weighted by its length (its area under the in-flight curve).
        areas = [r.in_flight_mean * r.duration_s for r in reports if r.in_flight_mean is not None]
        in_flight = (round(sum(areas) / duration, 4) if duration > 0 else None) if areas else None

        def pct(p: float) -> float | None:
            return round(ok_h.percentile_ms(p), 3) if has else None

        return IntervalStats(
            run_key=self.run_key,
            t_s=reports[0].t_s,
            duration_s=duration,
            requests=ok + errors,
            ok=ok,
            errors=errors,
            errors_by_class=by_class,
            bytes=sum(r.bytes for r in reports),
            dropped=sum(r.dropped for r in reports),
            interrupted=sum(r.interrupted for r in reports),
            active_vus=sum(r.active_vus for r in reports),
            target_rate=round(sum(r.target_rate for r in reports), 3),
            histogram=ok_h.encode(),
            histogram_all=all_h.encode(),
            histogram_service=svc_h.encode(),
            p50_ms=pct(50),
            p90_ms=pct(90),
            p95_ms=pct(95),
            p99_ms=pct(99),
            max_ms=round(ok_h.max_ms(), 3) if has else None,
            stage=max(r.stage for r in reports),
            generator_cpu_percent=max(cpus) if cpus else None,
            loop_lag_p99_ms=round(lag_h.percentile_ms(99), 3) if lag_h.count else None,
            loop_lag_max_ms=round(lag_h.max_ms(), 3) if lag_h.count else None,
            histogram_lag=lag_h.encode(),
            in_flight_mean=in_flight,
            generator_cpu_by_worker=tuple(by_worker[w].cpu_percent if w in by_worker else None
                                          for w in range(self.workers)),
            histogram_lag_by_worker=tuple(by_worker[w].histogram_lag.encode() if w in by_worker else b""
                                          for w in range(self.workers)),
        )
