"""A generator worker process: runs its share of the load and reports every interval.

Started by the engine as ``python -m lab.load.worker``. It speaks the JSON-lines protocol
of ``lab.load.wire``: a ``WorkerConfig`` and commands on stdin, ``Ready``, one
``IntervalReport`` per interval index in order, and ``Done`` on stdout. End of stdin (the
engine died) stops the worker too; a line on stdin that is not a message of the protocol
ends it with exit code 2 and the reason on stderr.

An interval's ``histogram_lag`` holds the worker's lag in µs: how late each 10 ms
wake-up of its loop-lag probe fired and, in the open model, each request's send lag
(actual send time minus intended, see ``OpenExecutor``); ``cpu_percent`` is its CPU over
the interval (% of one core); ``in_flight_mean`` the time-weighted mean number of its
requests outstanding (see ``IntervalAccumulator.report``).
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from lab.load.engines import make_engine
from lab.load.executors import ClosedExecutor, Executor, OpenExecutor
from lab.load.profile import LoadProfile, split_evenly
from lab.load.recorder import StatsRecorder
from lab.load.wire import (
    Done,
    IntervalReport,
    Ready,
    SetLevel,
    Start,
    Stop,
    WireError,
    WorkerConfig,
    decode_command,
    decode_config,
    encode,
)
from lab.load.workload import RequestPicker
from lab.spec import LoadSpec


def _write(msg: Ready | IntervalReport | Done) -> None:
    sys.stdout.buffer.write(encode(msg))
    sys.stdout.buffer.flush()


def build_executor(config: WorkerConfig, t0: float) -> tuple[Executor, StatsRecorder]:
    """Build this worker's executor from its config."""
    load = LoadSpec.model_validate(config.load)
    index, workers = config.index, config.workers
    stages = [(s.duration, s.target) for s in load.stages]
    start = load.vus if load.model == "closed" else load.rate
    total_s = load.total_duration_s
    # Closed model: a request goes out when its VU sends it, so service time = latency.
    recorder = StatsRecorder(t0, config.interval_s, total_s,
                             service_is_latency=load.model == "closed")
    # A VU keeps its cookies as a browser does; the open model has no VUs, and each
    # arrival is a new visitor who brings none.
    engine = make_engine(load.client, config.base_url, load.timeout, load.keep_alive,
                         http2=load.http2, follow_redirects=load.follow_redirects,
                         cookies=load.model == "closed")
    picker = RequestPicker(load.requests, seed=config.seed * 1000 + index)
    common: dict[str, Any] = {
        "engine": engine,
        "picker": picker,
        "recorder": recorder,
        "t0": t0,
        "grace_s": load.timeout,
    }
    if load.model == "closed":
        profile = LoadProfile(stages, float(start or 0), total_s)
        return ClosedExecutor(profile=profile, worker_index=index, workers=workers,
                              think_time_s=load.think_time, max_rps=(load.max_rps / workers
                              if load.max_rps else None), **common), recorder
    # The rate is split exactly: each worker schedules rate/workers, however small, so a
    # rate below the worker count is neither rounded to zero nor left unthrottled.
    profile = LoadProfile(stages, float(start or 0), total_s, scale=1.0 / workers)
    in_flight = max(1, split_evenly(load.max_in_flight, index, workers))
    connections = max(1, split_evenly(load.connections or load.max_in_flight, index, workers))
    return OpenExecutor(profile=profile, max_in_flight=in_flight, connections=connections,
                        phase=index / workers, **common), recorder


LAG_PROBE_S = 0.01
"""How often the loop-lag probe asks to wake up."""


async def _probe_loop_lag(recorder: StatsRecorder) -> None:
    """Record how late each 10 ms wake-up comes: a busy event loop delays every send and
    every response read by as much, so the latency it measures is partly its own."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + LAG_PROBE_S
        await asyncio.sleep(LAG_PROBE_S)
        now = loop.time()
        recorder.lag(time.monotonic(), max(0.0, now - expected))


class _CpuMeter:
    """This process's CPU use between two readings, as a percent of one core."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.monotonic()

    def read(self) -> float:
        cpu, wall = time.process_time(), time.monotonic()
        pct = (cpu - self.cpu) / (wall - self.wall) * 100 if wall > self.wall else 0.0
        self.cpu, self.wall = cpu, wall
        return round(pct, 1)


Write = Callable[[Ready | IntervalReport | Done], None]
"""Where a worker's messages go: stdout here, a Dask event topic on a cluster."""


async def _report_intervals(executor: Executor, recorder: StatsRecorder, done: asyncio.Event,
                            write: Write) -> None:
    """Ship each interval once it is over; the last one when the executor has finished."""
    interval = recorder.interval_s
    index = 0
    meter = _CpuMeter()
    while index < recorder.last_index:
        boundary = recorder.t0 + (index + 1) * interval
        delay = boundary - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(done.wait(), delay)
            except TimeoutError:
                pass
        if done.is_set():
            break
        # A completion a hair after the boundary still belongs to this interval's
        # successor; give the loop one turn so callbacks due at the boundary run first.
        await asyncio.sleep(0)
        acc = recorder.pop(index)
        cpu, vus, rate = meter.read(), executor.active_vus(), executor.target_rate()
        histograms = {}
        for key, blob in acc.encode_histograms(recorder.scratch):
            histograms[key] = blob
            await asyncio.sleep(0)  # let sends and responses through between histograms
        write(acc.message(index * interval, interval, vus, rate,
                           executor.profile.stage_at(index * interval), cpu, histograms))
        index += 1
    await done.wait()
    end = time.monotonic()
    last = max(index, min(recorder.index_at(end), recorder.last_index))
    for i in range(index, last + 1):
        acc = recorder.pop(i)
        start_s = i * interval
        length = (end - recorder.t0 - start_s) if i == last else interval
        write(acc.report(start_s, max(0.0, length), executor.active_vus(),
                          executor.target_rate(), executor.profile.stage_at(start_s),
                          meter.read() if i == last else None, recorder.scratch))


_Line = bytes | None
"""A line from stdin; None at its end (the engine is gone)."""


async def _read_lines(queue: asyncio.Queue[_Line]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            await queue.put(None)
            return
        if line.strip():
            await queue.put(line)


async def _next_command(queue: asyncio.Queue[_Line]) -> Start | SetLevel | Stop | None:
    """The next command, or None at the end of stdin.

    Raises:
        WireError: the line is not a command of the protocol.
    """
    line = await queue.get()
    return None if line is None else decode_command(line)


def _freeze_heap() -> None:
    """Keep the garbage collector off everything allocated before the load starts.

    A full (generation 2) collection walks every tracked object: with pydantic, httpx and
    the rest imported that took 22 ms on the lab's 2-core machine, once every few
    seconds, and an open-model worker sending 60,000 req/s fell 25 ms behind its
    schedule each time. Frozen objects are never walked again; what the load allocates
    is freed by reference counting and keeps full collections short.
    """
    gc.collect()
    gc.freeze()


async def main_async() -> int:
    """Run the worker: its exit code (2 after a malformed line on stdin)."""
    lines: asyncio.Queue[_Line] = asyncio.Queue()
    reader_task = asyncio.create_task(_read_lines(lines))
    try:
        return await _serve(lines)
    except WireError as exc:
        sys.stderr.write(f"generator worker: {exc}\n")
        return 2
    finally:
        reader_task.cancel()


async def _serve(lines: asyncio.Queue[_Line]) -> int:
    first = await lines.get()
    if first is None:
        return 0
    config = decode_config(first)
    _write(Ready(host=socket.gethostname(), pid=os.getpid()))
    cmd = await _next_command(lines)
    if not isinstance(cmd, Start):
        return 0
    commands: asyncio.Queue[SetLevel | Stop | None] = asyncio.Queue()
    malformed: list[WireError] = []

    async def relay() -> None:
        while True:
            try:
                c = await _next_command(lines)
            except WireError as exc:  # stop, report what was measured, then say why
                malformed.append(exc)
                c = None
            if c is None or isinstance(c, SetLevel | Stop):
                await commands.put(c)
            if c is None or isinstance(c, Stop):
                return

    relay_task = asyncio.create_task(relay())
    try:
        await run_share(config, cmd.t0, commands, _write)
    finally:
        relay_task.cancel()
    if malformed:
        raise malformed[0]
    return 0


async def run_share(config: WorkerConfig, t0: float,
                    commands: asyncio.Queue[SetLevel | Stop | None], write: Write) -> None:
    """Run this worker's share of the load from ``t0`` (``time.monotonic()`` of this
    process) to its end, writing one ``IntervalReport`` per interval and then ``Done``.

    Args:
        config: what to load and this worker's share of it.
        t0: the load's start on this process's monotonic clock.
        commands: ``SetLevel`` changes the level; ``Stop`` or None ends the load early.
        write: where each message goes.
    """
    executor, recorder = build_executor(config, t0)
    _freeze_heap()
    delay = executor.t0 - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    done = asyncio.Event()
    reporter = asyncio.create_task(_report_intervals(executor, recorder, done, write))
    prober = asyncio.create_task(_probe_loop_lag(recorder))
    runner = asyncio.create_task(executor.run())

    async def control() -> None:
        while True:
            c = await commands.get()
            if c is None or isinstance(c, Stop):
                executor.stopping.set()
                return
            executor.set_level(c.value)

    controller = asyncio.create_task(control())
    try:
        await runner
    finally:
        prober.cancel()
        done.set()
        await reporter
        controller.cancel()
    write(Done(errors=tuple((cls, status, str(msg), int(n)) for (cls, status), (msg, n)
                            in recorder.error_samples.items())))


def run_loop(coro: Any) -> Any:
    """Run on uvloop where it is installed: its loop costs less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    # The engine owns this process's lifetime: Ctrl-C in the terminal goes to the engine,
    # which stops workers in order, so a stray SIGINT here must not kill the measurement.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.exit(run_loop(main_async()))
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
