"""Executors: the closed model (VUs looping) and the open model (arrivals on a schedule).

Both run inside one generator worker process on its share of the load, and record every
completed attempt in a ``StatsRecorder``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from asyncio_throttle import Throttler

from lab.load.engines import ClientEngine
from lab.load.profile import LoadProfile, split_evenly
from lab.load.recorder import StatsRecorder
from lab.load.workload import RequestPicker

CONTROL_TICK_S = 0.05
"""How often the closed model re-reads the VU target of a ramp."""


class Executor:
    """Common parts: the profile, the clock and the end of the run.

    Args:
        engine: the client engine.
        picker: the request mix.
        recorder: where attempts are recorded.
        profile: the total load profile scaled to this worker's share.
        t0: monotonic start time of the load.
        grace_s: how long in-flight requests are awaited after the run's end (their
            deadline); any still running then are cancelled and counted as interrupted.
    """

    def __init__(self, engine: ClientEngine, picker: RequestPicker, recorder: StatsRecorder,
                 profile: LoadProfile, t0: float, grace_s: float) -> None:
        self.engine = engine
        self.picker = picker
        self.recorder = recorder
        self.profile = profile
        self.t0 = t0
        self.end = t0 + profile.total_s
        self.grace_s = grace_s
        self.stopping = asyncio.Event()
        """Set to end the run early (abort): in-flight requests are cancelled."""

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def active_vus(self) -> int:
        return 0

    def target_rate(self) -> float:
        return 0.0

    def set_level(self, total_level: float) -> None:
        """A user changed the load: hold this total level from now on."""
        self.profile.override(max(0.0, self.elapsed()), total_level)

    async def _sleep_until(self, deadline: float) -> bool:
        """Sleep until the monotonic ``deadline``; False if the run was stopped first."""
        delay = deadline - time.monotonic()
        if delay <= 0:
            return not self.stopping.is_set()
        try:
            await asyncio.wait_for(self.stopping.wait(), delay)
            return False
        except TimeoutError:
            return True

    async def _finish(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Await in-flight work up to its deadline, then cancel what is left."""
        deadline = time.monotonic() + self.grace_s
        pending = {t for t in tasks if not t.done()}
        while pending and not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            stop_wait = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait(pending | {stop_wait}, timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            pending = {t for t in pending if not t.done()}
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class ClosedExecutor(Executor):
    """N VUs each looping request → response → think time; ramps change N linearly.

    Args:
        worker_index, workers: this worker's place, for an exact split of the VU total.
        think_time_s: pause after each response.
        max_rps: optional cap on this worker's request rate (asyncio-throttle).
    """

    def __init__(self, *args: Any, worker_index: int, workers: int, think_time_s: float,
                 max_rps: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_index = worker_index
        self.workers = workers
        self.think_time_s = think_time_s
        # asyncio-throttle releases tokens per period; a period of 1 s at rate r caps at
        # r req/s with bursts up to r, which is what a cap (not a pacer) should do.
        self.throttler = Throttler(rate_limit=max(1, round(max_rps)), period=1.0) if max_rps else None
        self._vus: list[tuple[asyncio.Task[None], asyncio.Event]] = []
        self._last_wanted = 0

    def active_vus(self) -> int:
        if time.monotonic() >= self.end or self.stopping.is_set():
            return self._last_wanted  # VUs wind down after the end; report the level reached
        return sum(1 for task, retire in self._vus if not retire.is_set() and not task.done())

    def _wanted(self, t: float) -> int:
        # The closed model's profile holds the total; VUs are whole, so split exactly.
        return split_evenly(round(self.profile.level_at(t)), self.worker_index, self.workers)

    async def _vu(self, retire: asyncio.Event) -> None:
        engine, picker, rec = self.engine, self.picker, self.recorder
        client = engine.new_client()
        try:
            now = time.monotonic()
            while not retire.is_set() and now < self.end:
                if self.throttler is not None:
                    async with self.throttler:
                        pass
                    if time.monotonic() >= self.end or retire.is_set():
                        break
                req = picker.pick()
                start = time.monotonic()
                try:
                    out = await engine.send(client, req)
                except asyncio.CancelledError:
                    rec.interrupt(time.monotonic())
                    raise
                now = time.monotonic()  # also the next iteration's clock reading
                rec.record(now, now - start, now - start, out.nbytes, out.error_class,
                           out.status, out.message)
                if self.think_time_s > 0:
                    if not await self._sleep_until(min(now + self.think_time_s, self.end)):
                        break
                    now = time.monotonic()
        finally:
            await client.aclose()

    async def run(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= self.end:
                break
            wanted = self._last_wanted = self._wanted(now - self.t0)
            live = [(t, r) for t, r in self._vus if not t.done() and not r.is_set()]
            if len(live) < wanted:
                for _ in range(wanted - len(live)):
                    retire = asyncio.Event()
                    task = asyncio.create_task(self._vu(retire))
                    self._vus.append((task, retire))
            elif len(live) > wanted:
                # Retire the newest VUs after their current request: never cut one short.
                for _task, retire in live[wanted:]:
                    retire.set()
            self._vus = [(t, r) for t, r in self._vus if not t.done()]
            if not await self._sleep_until(min(now + CONTROL_TICK_S, self.end)):
                break
        await self._finish({t for t, _ in self._vus if not t.done()})


class OpenExecutor(Executor):
    """Arrivals on a schedule, whether or not responses came back.

    Latency is measured from each request's *intended* send time, which corrects
    coordinated omission (Gil Tene, "How NOT to Measure Latency"); service time from the
    actual send is recorded too. When ``max_in_flight`` requests are outstanding, a due
    request is counted as dropped, never silently skipped.

    Args:
        max_in_flight: this worker's cap on outstanding requests.
        phase: fraction (0..1) of an arrival by which this worker's schedule is offset, so
            several workers' arrivals interleave instead of coinciding.
    """

    def __init__(self, *args: Any, max_in_flight: int, connections: int, phase: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_in_flight = max_in_flight
        self.phase = phase
        self._idle: deque[Any] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # FIFO: requests waiting for a connection go out in the order they were due.
        self._conn_slots = asyncio.Semaphore(connections)

    def target_rate(self) -> float:
        return self.profile.level_at(self.elapsed())

    async def _one(self, intended: float) -> None:
        engine, rec = self.engine, self.recorder
        try:
            await self._conn_slots.acquire()
        except asyncio.CancelledError:
            rec.interrupt(time.monotonic())
            raise
        client = self._idle.pop() if self._idle else engine.new_client()
        try:
            req = self.picker.pick()
            sent = time.monotonic()
            try:
                out = await engine.send(client, req)
            except asyncio.CancelledError:
                rec.interrupt(time.monotonic())
                await client.aclose()
                raise
            now = time.monotonic()
            rec.record(now, now - intended, now - sent, out.nbytes, out.error_class, out.status,
                       out.message)
            self._idle.append(client)
        finally:
            self._conn_slots.release()

    async def run(self) -> None:
        n = self.phase
        tasks = self._tasks
        behind = 0
        try:
            while not self.stopping.is_set():
                due = self.profile.time_of_arrival(n)
                if due is None or due >= self.profile.total_s:
                    # A user override may extend a zero-rate tail; re-check shortly.
                    if self.profile.overridden and time.monotonic() < self.end:
                        if not await self._sleep_until(time.monotonic() + CONTROL_TICK_S):
                            break
                        n = max(n, self._count_now())
                        continue
                    break
                intended = self.t0 + due
                if intended > time.monotonic():
                    behind = 0
                    if not await self._sleep_until(intended):
                        break
                else:
                    # Behind schedule: catch up, but let responses and reports run too.
                    behind += 1
                    if behind % 64 == 0:
                        await asyncio.sleep(0)
                n += 1
                if len(tasks) >= self.max_in_flight:
                    self.recorder.drop(intended)
                    continue
                task = asyncio.create_task(self._one(intended))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            # The schedule may end before the run does (a low rate); the run still lasts
            # its full length so every worker's intervals line up.
            await self._sleep_until(self.end)
            await self._finish(set(tasks))
        finally:
            while self._idle:
                await self._idle.pop().aclose()

    def _count_now(self) -> float:
        t = self.elapsed()
        for seg in self.profile.segments:
            if t < seg.t1:
                return seg.count_at(max(t, seg.t0))
        last = self.profile.segments[-1]
        return last.count_at(last.t1)
