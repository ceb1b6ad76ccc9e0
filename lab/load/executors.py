"""Executors: the closed model (VUs looping) and the open model (arrivals on a schedule).

Both run inside one generator worker process on its share of the load, and record every
completed attempt in a ``StatsRecorder``.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from lab.load.engines import ClientEngine
from lab.load.profile import LoadProfile, Segment, split_evenly
from lab.load.recorder import StatsRecorder
from lab.load.timer import PreciseSleeper
from lab.load.workload import RequestPicker

_INF = float("inf")

CONTROL_TICK_S = 0.05
"""How often the closed model re-reads the VU target of a ramp."""

SLEEP_CHUNK_S = 0.05
"""The open model's scheduler sleeps at most this long at a time, then looks at the stop
flag and the schedule (a changed level) again."""

BATCH_S = 0.0005
"""The open model sends every arrival due within this many seconds at once, up to this
much early (timed from when it went, so its latency is never shortened). Each batch
wakes the worker and the target once, and on the lab's 2-core VM a wake-up costs tens
of µs; measured against nginx at 30,000 and 60,000 req/s, a worker's CPU per request
was 24.7 and 16.0 µs with 0.2 ms batches, 17.2 and 12.6 µs with 0.5 ms, 14.1 and
11.9 µs with 1 ms. 0.5 ms keeps most of the saving and the schedule within half a
millisecond."""

TIMER_SLACK_S = 0.00005
"""How late the open model's timer typically fires (Linux's default timer slack)."""

CATCH_UP_EVERY = 32
"""Behind schedule, the scheduler lets the loop run (senders, responses, reports) after
this many arrivals sent in a row."""

PACER_CATCH_UP_S = 0.005
"""How far in the past a closed-model slot (``Pacer``) may still be taken: a timer or a
busy loop waking a few ms late then costs no request (letting a slot be late by at most
one interval, caps of 1,000 and 3,000 req/s sent 979 and 2,359 req/s to a fake 2 ms
server; with this, 1,000 and 3,000), and the bucket stays small: after an idle spell
at most ``1 + PACER_CATCH_UP_S · rate`` requests go out back to back, so one alone
below 200 req/s."""

END_CATCH_UP_S = 0.5
"""How long past the run's end the open model's scheduler may still send arrivals that
fell due before it: a timer or a busy moment costs no request at the end (without it, a
loaded machine dropped the last few of a 2,000-arrival schedule), while a loop that has
fallen seconds behind its schedule stops there and counts the rest as dropped instead
of running on as long as it is behind."""

IDLE_RETIRE_S = 2.0
"""An open-model connection idle this long is closed (its sender ends), so the pool
shrinks again after a burst; the one used last always stays."""


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


class Pacer:
    """Spaces one worker's closed-model requests evenly: at most one every ``1/rate_per_s``
    seconds, shared by all its VUs (a ``max_rps`` cap).

    A next-slot scheduler (GCRA): a VU waits for the slot after the last one taken; a
    slot more than ``PACER_CATCH_UP_S`` in the past is gone, so an idle spell never saves
    up a burst, while a timer waking late neither shifts later slots nor loses one. VUs
    queue for slots in order (a FIFO lock: the VU holding it sleeps until its slot), so
    a VU that retires or stops while waiting leaves its slot to the next one instead of
    wasting it. The rate is used as given: a share below 1 req/s (``max_rps`` split over
    more workers than that) is neither rounded up nor left unthrottled.

    asyncio-throttle, used here before, counted requests per one-second window and let
    each second's allowance out at once (measured at 50 req/s with 4 VUs: 14 to 26
    requests within 0.1 s, then none for 0.8 s), and rounded a share below 1 req/s up
    to 1.

    Args:
        rate_per_s: this worker's cap, requests per second (> 0).
        first_slot: monotonic time of the first slot (workers offset theirs by a fraction
            of the interval, so their requests interleave instead of coinciding).
    """

    def __init__(self, rate_per_s: float, first_slot: float) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        # Slot k after the anchor is computed as anchor + k / rate, never by adding up
        # intervals: a sum drifts by float rounding, and 10 intervals of 1/(10/3) s ended
        # at 2.9999999999999996 s, a slot just before a 3 s end that was then sent.
        self._anchor = first_slot
        self._taken = 0
        # A slot this close to the end is on it (rounding of monotonic times is ~1e-9 s
        # even after months of uptime); at most half an interval, so no real slot is lost.
        self._on_end_s = min(1e-6, 0.5 / rate_per_s)
        self._turn = asyncio.Lock()  # FIFO: VUs get slots in the order they asked

    @property
    def next_slot(self) -> float:
        """Monotonic time of the next slot no VU has taken yet."""
        return self._anchor + self._taken / self.rate_per_s

    async def take(self, sleep_until: Callable[[float], Awaitable[bool]],
                   still_wanted: Callable[[], bool], end: float) -> bool:
        """Wait for the next free slot and take it.

        Args:
            sleep_until: sleeps until a monotonic deadline; False when the run stopped.
            still_wanted: whether the VU still wants to send (e.g. not retired); asked
                when its turn comes and again at its slot.
            end: monotonic end of the run: no slot at or after it is handed out.

        Returns:
            True at the slot (send now); False when the VU should stop instead (its slot
            stays free for the next VU).
        """
        async with self._turn:
            if not still_wanted():
                return False
            # A slot further in the past was not taken in time: it is gone (no burst saved
            # up); a slot missed by less is sent now (a late wake-up costs no request).
            slot = self.next_slot
            earliest = time.monotonic() - PACER_CATCH_UP_S
            if slot < earliest:
                slot = earliest
                self._anchor, self._taken = earliest, 0
            if slot >= end - self._on_end_s or not await sleep_until(slot) or not still_wanted():
                return False
            self._taken += 1
            return True


class ClosedExecutor(Executor):
    """N VUs each looping request → response → think time; ramps change N linearly.

    Each VU has a number, unique across the run's generator workers and 1-based, as k6's
    ``__VU`` (the ``{vu}`` placeholder): worker ``i`` of ``n`` gives its VUs the local
    numbers 0, 1, 2, … and VU ``local`` is number ``local × n + i + 1``. As the VU total is
    split with the first workers taking one more, N VUs are numbered exactly 1..N. A VU
    keeps its number for its life; a new VU takes the lowest local number free.

    Args:
        worker_index, workers: this worker's place, for an exact split of the VU total.
        think_time_s: pause after each response.
        max_rps: optional cap on this worker's request rate (its share of ``[load]
            max_rps``), requests spaced evenly by a ``Pacer``.
    """

    def __init__(self, *args: Any, worker_index: int, workers: int, think_time_s: float,
                 max_rps: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_index = worker_index
        self.workers = workers
        self.think_time_s = think_time_s
        # Worker i of n starts its slots i/n of an interval late, so the workers' evenly
        # spaced requests interleave into one evenly spaced stream of the total max_rps.
        self.pacer = (Pacer(max_rps, self.t0 + worker_index / workers / max_rps)
                      if max_rps else None)
        self._vus: list[tuple[asyncio.Task[None], asyncio.Event]] = []
        self._last_wanted = 0
        self._free_numbers: list[int] = []
        """Local VU numbers given back by VUs that ended (a heap: the lowest first)."""
        self._next_number = 0

    def active_vus(self) -> int:
        if time.monotonic() >= self.end or self.stopping.is_set():
            return self._last_wanted  # VUs wind down after the end; report the level reached
        return sum(1 for task, retire in self._vus if not retire.is_set() and not task.done())

    def _wanted(self, t: float) -> int:
        # The closed model's profile holds the total; VUs are whole, so split exactly.
        return split_evenly(round(self.profile.level_at(t)), self.worker_index, self.workers)

    def _take_number(self) -> int:
        """A local VU number: the lowest one free."""
        if self._free_numbers:
            return heapq.heappop(self._free_numbers)
        self._next_number += 1
        return self._next_number - 1

    def vu_number(self, local: int) -> int:
        """The run-wide, 1-based number of this worker's VU ``local``."""
        return local * self.workers + self.worker_index + 1

    async def _vu(self, retire: asyncio.Event, local: int) -> None:
        engine, picker, rec = self.engine, self.picker, self.recorder
        number = self.vu_number(local)
        client = engine.new_client()
        try:
            now = time.monotonic()
            while not retire.is_set() and now < self.end:
                if self.pacer is not None and not await self.pacer.take(
                        self._sleep_until, lambda: not retire.is_set(), self.end):
                    break
                req = picker.pick(number)
                start = time.monotonic()
                rec.begin(start)
                try:
                    out = await engine.send(client, req)
                except asyncio.CancelledError:
                    rec.interrupt(time.monotonic())
                    raise
                now = time.monotonic()  # also the next iteration's clock reading
                rec.record(now, now - start, now - start, out.nbytes, out.error_class,
                           out.status, out.message)
                if self.think_time_s > 0:
                    # Decided on the planned time, not on the clock after the sleep: a
                    # sleep cut short to the end may wake a hair early (uvloop's timers
                    # count whole milliseconds) and must not buy one more request. The VU
                    # stays until the end, so the run does not replace it with a new one.
                    next_at = now + self.think_time_s
                    if next_at >= self.end:
                        await self._sleep_until(self.end)
                        break
                    if not await self._sleep_until(next_at):
                        break
                    now = time.monotonic()
        finally:
            heapq.heappush(self._free_numbers, local)
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
                    task = asyncio.create_task(self._vu(retire, self._take_number()))
                    self._vus.append((task, retire))
            elif len(live) > wanted:
                # Retire the newest VUs after their current request: never cut one short.
                for _task, retire in live[wanted:]:
                    retire.set()
            self._vus = [(t, r) for t, r in self._vus if not t.done()]
            # No tick at the end: waking a hair early there would start VUs that send
            # one request each just before it.
            tick = now + CONTROL_TICK_S
            if tick >= self.end:
                await self._sleep_until(self.end)
                break
            if not await self._sleep_until(tick):
                break
        await self._finish({t for t, _ in self._vus if not t.done()})


class OpenExecutor(Executor):
    """Arrivals on a schedule, whether or not responses came back.

    Latency is measured from each request's *intended* send time, which corrects
    coordinated omission (Gil Tene, "How NOT to Measure Latency"); service time from the
    actual send is recorded too. When ``max_in_flight`` requests are outstanding, a due
    request is counted as dropped, never silently skipped.

    Send lag: each request's actual send time minus its intended one (or minus the
    moment it was handed over, when that came first: an early send), in seconds, is
    counted with the worker's loop lag in the per-interval lag histogram (the one behind
    ``loop_lag_p99_ms`` and ``histogram_lag``), so a generator that falls behind its
    schedule is flagged generator-bound (lag p99 over 10 ms) even when its 10 ms loop
    probe still wakes on time (it did: 3 ms while requests went out 190 ms late). A
    request that waits for a free connection counts only how late the scheduler queued
    it: the wait itself is the target's (or the ``connections`` cap's), and it shows in
    latency, not in service time.

    How it runs (as wrk2 does): one scheduler task walks the schedule and hands each due
    arrival to a long-lived sender, one per connection, with no task per arrival. An idle
    sender gets it directly; when none is idle, a new sender (and connection) starts, up
    to ``connections``; beyond that the arrival waits in a FIFO queue for the first sender
    to come free, and that wait counts in its latency but not in its service time. The
    scheduler sleeps in chunks of at most ``SLEEP_CHUNK_S`` and sends every arrival due
    within ``BATCH_S`` at once; a request sent up to that much early is timed from its
    hand-over, never from its intended time, so its latency never undercuts its service
    time. Senders idle for ``IDLE_RETIRE_S`` close their connection and end.

    Args:
        max_in_flight: this worker's cap on outstanding requests (queued or being sent).
        connections: this worker's cap on connections (senders).
        phase: fraction (0..1) of an arrival by which this worker's schedule is offset, so
            several workers' arrivals interleave instead of coinciding.
    """

    def __init__(self, *args: Any, max_in_flight: int, connections: int, phase: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_in_flight = max_in_flight
        self.connections = connections
        self.phase = phase
        self._outstanding = 0
        """Arrivals accepted and not finished: waiting for a connection or being sent."""
        self._queue: deque[float] = deque()
        """Start times (see ``_sender``) of arrivals waiting for a free connection, FIFO."""
        self._idle: deque[tuple[float, asyncio.Future[float | None]]] = deque()
        """Idle senders as (idle since, the future that wakes them), the last idled last."""
        self._senders: set[asyncio.Task[None]] = set()
        self._closing = False
        # The constant-rate segment the schedule is in, to compute arrival times without
        # searching the profile (cleared by a user's level change: the profile's version).
        self._seg: Segment | None = None
        self._seg_version = -1
        self._seg_last = 0.0
        self._n = phase
        """Number of the next arrival of the schedule (fractional: the phase)."""
        self._next_at = _INF
        """Monotonic time at which arrival ``_n`` is due; inf once the schedule has ended."""

    def target_rate(self) -> float:
        return self.profile.level_at(self.elapsed())

    def _due(self, n: float) -> float | None:
        """Seconds after t0 at which arrival ``n`` is due (None: after the profile)."""
        seg = self._seg
        if seg is not None and n <= self._seg_last and self._seg_version == self.profile.version:
            return seg.t0 + (n - seg.count0) / seg.start_level
        due = self.profile.time_of_arrival(n)
        self._seg = None
        if due is not None:
            for seg in self.profile.segments:
                if seg.t0 <= due < seg.t1:
                    if seg.start_level == seg.end_level and seg.start_level > 0:
                        self._seg, self._seg_version = seg, self.profile.version
                        self._seg_last = seg.count_at(seg.t1)
                    break
        return due

    def _set_next(self) -> None:
        """Compute ``_next_at``: when arrival ``_n`` is due (inf: the schedule has ended)."""
        due = self._due(self._n)
        self._next_at = _INF if due is None or due >= self.profile.total_s else self.t0 + due

    def set_level(self, total_level: float) -> None:
        super().set_level(total_level)
        self._set_next()

    async def _sender(self, start: float) -> None:
        """One connection: sends the arrival it was started with, then the ones handed or
        queued to it, until the run closes or it has idled for ``IDLE_RETIRE_S``.

        ``start`` is the arrival's intended send time, or the moment it was handed over
        when that came first (an early send within ``BATCH_S``); latency runs from it.
        After each response the sender takes the arrival that has waited longest for a
        connection, if any, else it idles until the scheduler hands it one. (Taking the
        next due arrival itself, without the hand-over, was measured: it saves a task
        switch but sends one request per loop turn instead of the scheduler's batches,
        and cost 8 % more CPU per request at 30,000 req/s.)
        """
        engine, rec, picker = self.engine, self.recorder, self.picker
        queue, idle = self._queue, self._idle
        loop = asyncio.get_running_loop()
        monotonic = time.monotonic
        client = engine.new_client()
        handed = True  # handed over by the scheduler (its send lag is ours to count)
        try:
            while True:
                req = picker.pick()
                sent = monotonic()
                try:
                    out = await engine.send(client, req)
                except asyncio.CancelledError:
                    self._outstanding -= 1
                    rec.interrupt(monotonic())
                    raise
                now = monotonic()
                self._outstanding -= 1
                rec.record(now, now - start, now - sent, out.nbytes, out.error_class, out.status,
                           out.message, sent - start if handed else None)
                if queue:  # the arrival that has waited longest for a connection
                    start = queue.popleft()
                    handed = False  # the scheduler counted its send lag when it queued it
                    continue
                if self._closing:
                    return
                wake: asyncio.Future[float | None] = loop.create_future()
                idle.append((now, wake))
                got = await wake
                if got is None:
                    return
                start, handed = got, True
        finally:
            await client.aclose()

    def _retire_idle(self, now: float) -> None:
        """End senders idle since before ``now - IDLE_RETIRE_S``, but the newest."""
        idle = self._idle
        cutoff = now - IDLE_RETIRE_S
        while len(idle) > 1 and idle[0][0] < cutoff:
            wake = idle.popleft()[1]
            if not wake.done():
                wake.set_result(None)

    async def _schedule(self) -> None:
        """Hand each arrival to a sender when it is due, until the schedule or run ends."""
        rec, profile, stopping = self.recorder, self.profile, self.stopping
        queue, idle, senders = self._queue, self._idle, self._senders
        monotonic = time.monotonic
        self._n = self.phase
        self._set_next()
        next_retire = monotonic() + IDLE_RETIRE_S
        in_a_row = 0
        sleeper = PreciseSleeper(asyncio.get_running_loop())
        nap = sleeper.until
        try:
            while not stopping.is_set():
                intended = self._next_at
                if intended == _INF:
                    # A user override may extend a zero-rate tail; re-check shortly.
                    if profile.overridden and monotonic() < self.end:
                        await asyncio.sleep(CONTROL_TICK_S)
                        self._n = max(self._n, self._count_now())
                        self._set_next()
                        continue
                    return
                now = monotonic()
                if intended > now + BATCH_S:
                    if now >= next_retire:
                        self._retire_idle(now)
                        next_retire = now + IDLE_RETIRE_S
                    in_a_row = 0
                    # The timer fires about its slack late: aim that much early.
                    await nap(min(intended - TIMER_SLACK_S, now + SLEEP_CHUNK_S))
                    continue
                if now >= self.end + END_CATCH_UP_S:
                    # A loop too busy to keep up is still behind well after the run's end:
                    # sending the rest would run past the end by as much as it is behind.
                    # They were never sent: dropped, as over max_in_flight.
                    self._drop_unsent()
                    return
                self._n += 1
                self._set_next()
                if self._outstanding >= self.max_in_flight:
                    rec.drop(intended)
                    continue
                self._outstanding += 1
                start = intended if intended < now else now
                rec.begin(start)
                while idle:
                    wake = idle.pop()[1]
                    if not wake.done():
                        wake.set_result(start)
                        break
                else:
                    if len(senders) < self.connections:
                        task = asyncio.create_task(self._sender(start))
                        senders.add(task)
                        task.add_done_callback(senders.discard)
                    else:
                        # All connections busy: it waits for one. That wait is the target's
                        # doing (or the connections cap's), so its send lag is only how
                        # late the scheduler got to it.
                        queue.append(start)
                        rec.lag(now, now - intended if now > intended else 0.0)
                in_a_row += 1
                if in_a_row >= CATCH_UP_EVERY:
                    # Behind schedule (or a dense batch): let senders and responses run.
                    in_a_row = 0
                    await asyncio.sleep(0)
        finally:
            sleeper.close()

    async def run(self) -> None:
        try:
            await self._schedule()
            # The schedule may end before the run does (a low rate); the run still lasts
            # its full length so every worker's intervals line up.
            await self._sleep_until(self.end)
            self._closing = True
            while self._idle:
                wake = self._idle.pop()[1]
                if not wake.done():
                    wake.set_result(None)
            await self._finish(set(self._senders))
        finally:
            self._closing = True
            for task in self._senders:
                task.cancel()
            if self._senders:
                await asyncio.gather(*self._senders, return_exceptions=True)
            # Arrivals still waiting for a connection when the senders were cancelled.
            if self._queue:
                now = time.monotonic()
                for _ in range(len(self._queue)):
                    self.recorder.interrupt(now)
                self._outstanding -= len(self._queue)
                self._queue.clear()

    def _drop_unsent(self) -> None:
        """Count every arrival of the schedule from ``_n`` on as dropped, each in the
        interval it was due in, without walking them one by one (a starved loop can be
        a million behind)."""
        rec, interval_s, total_s = self.recorder, self.recorder.interval_s, self.profile.total_s
        done = round(self._n - self.phase)  # arrivals already sent or dropped
        first = self._due(self._n)
        k = int((first or 0.0) / interval_s)
        while k * interval_s < total_s:
            edge = min((k + 1) * interval_s, total_s)
            # Arrival n (phase, phase + 1, ...) is due before ``edge`` when the schedule's
            # count there exceeds n; the small margin keeps float error from adding one.
            due_before = max(0, math.ceil(self._count_at(edge) - self.phase - 1e-9))
            if due_before > done:
                rec.drop(self.t0 + (k + 0.5) * interval_s, due_before - done)
                done = due_before
            k += 1
        self._n = self.phase + done
        self._next_at = _INF

    def _count_now(self) -> float:
        return self._count_at(self.elapsed())

    def _count_at(self, t: float) -> float:
        """Arrivals the schedule holds ``t`` seconds after t0 (fractional)."""
        for seg in self.profile.segments:
            if t < seg.t1:
                return seg.count_at(max(t, seg.t0))
        last = self.profile.segments[-1]
        return last.count_at(last.t1)
