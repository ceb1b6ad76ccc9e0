"""A generator worker as one long-running task on a Dask worker.

The task runs ``lab.load.worker.run_share``, the code of a local worker process, on an
event loop of its own in the Dask worker's task thread. Its messages (``Ready``, one
``IntervalReport`` per interval, ``Done``) go to the lab as Dask events
(``Worker.log_event`` on the run's topic; the lab subscribes with
``Client.subscribe_topic``), each the JSON line a local worker writes on stdout.

The lab steers it through the scheduler: a ``Variable`` carries the start time (on the
scheduler's clock, which the task converts to its own with the offset it measures,
NTP-style, before the start), an event on the run's level topic each level a user sets (and another
``Variable`` the latest, read once a second in case an event went missing), and an
``Event`` the stop. A side thread waits on the stop event (Dask's sync calls block); the
task's loop also stops the load when the scheduler has released the task, which it does
when the lab's client is gone: a lab killed mid-run leaves no remote loop running.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any

from lab.load.wire import Done, IntervalReport, Ready, SetLevel, Stop, WorkerConfig, decode_config, encode
from lab.load.worker import run_loop, run_share

__all__ = ["generator_task", "level_name", "level_topic", "probe", "reports_topic", "start_name", "stop_name"]

POLL_S = 0.2
"""How often the task looks for its start time and whether the scheduler released it."""
WAKE_S = 1.0
"""The longest wait for the stop event before the level variable is read again."""


def reports_topic(run_key: str) -> str:
    """The Dask event topic a run's generators write to."""
    return f"lab-{run_key}-reports"


def start_name(run_key: str) -> str:
    return f"lab-{run_key}-start"


def stop_name(run_key: str) -> str:
    return f"lab-{run_key}-stop"


def level_name(run_key: str) -> str:
    """The variable holding the level a user set last, as ``[seq, value]``."""
    return f"lab-{run_key}-level"


def level_topic(run_key: str) -> str:
    """The event topic each level change is pushed on, as ``[seq, value]``."""
    return f"lab-{run_key}-levels"


def probe() -> dict[str, Any]:
    """What the lab checks on each Dask worker before a run (``client.run``): that this
    package imports there at all, its version, Python's, and the machine."""
    import platform

    from lab import __version__

    return {"lab": __version__, "python": platform.python_version(),
            "host": socket.gethostname(), "pid": os.getpid()}


CLOCK_SAMPLES = 5


def scheduler_offset_s(client: Any, samples: int = CLOCK_SAMPLES) -> tuple[float, float]:
    """How far the scheduler's clock is ahead of this machine's, seconds, and the round
    trip the reading came with (the shortest of ``samples``, as NTP picks its sample: a
    reading is off by at most half its round trip, and a busy machine lengthens some).

    Blocking: call it off any event loop.
    """
    best: tuple[float, float] | None = None
    for _ in range(samples):
        sent = time.time()
        theirs = float(client.run_on_scheduler(time.time))
        back = time.time()
        rtt = back - sent
        if best is None or rtt < best[1]:
            best = (theirs - (sent + back) / 2, rtt)
    assert best is not None
    return best


def clock_offset_ms(offset_s: float, rtt_s: float) -> float:
    """This machine's clock minus the scheduler's, ms, as far as it is known: within half
    the round trip of the reading it is indistinguishable from 0."""
    ahead = -offset_s
    margin = rtt_s / 2
    if abs(ahead) <= margin:
        return 0.0
    return round((abs(ahead) - margin) * 1000 * (1 if ahead > 0 else -1), 3)


def generator_task(config_json: str, run_key: str, ready_timeout_s: float) -> str:
    """Run one generator's share of a run on this Dask worker; returns how it ended.

    Args:
        config_json: the ``WorkerConfig`` line, with this generator's index.
        run_key: the run's key, naming its topic, variables and event.
        ready_timeout_s: how long to wait for the start time before giving up.
    """
    from distributed import Event, Variable, get_client, get_worker

    worker = get_worker()
    client = get_client()
    key = worker.get_current_task()
    config = decode_config(config_json)
    topic = reports_topic(run_key)

    def write(msg: Ready | IntervalReport | Done) -> None:
        worker.log_event(topic, {"i": config.index, "line": encode(msg).decode()})

    stop = Event(stop_name(run_key), client=client)
    started = Variable(start_name(run_key), client=client)
    offset_s, rtt_s = scheduler_offset_s(client)
    write(Ready(host=socket.gethostname(), pid=os.getpid(),
                clock_offset_ms=clock_offset_ms(offset_s, rtt_s)))
    deadline = time.monotonic() + ready_timeout_s
    t0_scheduler: float | None = None
    while t0_scheduler is None:
        if stop.is_set() or _released(worker, key) or time.monotonic() > deadline:
            write(Done())
            return "stopped before the start"
        try:
            t0_scheduler = float(started.get(timeout=POLL_S))
        except TimeoutError:
            continue
    # The scheduler's clock reads offset_s ahead of this machine's.
    t0 = time.monotonic() + (t0_scheduler - offset_s - time.time())
    resume = _pause_profiler(worker)
    try:
        run_loop(_run(config, t0, write, stop, Variable(level_name(run_key), client=client), worker, key,
                      client, run_key))
    finally:
        resume()
    return "done"


PROFILER_CALLBACKS = ("profile", "profile-cycle")
"""The Dask worker's statistical profiler (``distributed.worker.profile``)."""


def _pause_profiler(worker: Any) -> Any:
    """Stop the Dask worker's statistical profiler while the generator runs; returns what
    starts it again.

    Every 10 ms it walks the stack of each task thread on the worker's event-loop thread,
    taking the GIL from the generator: with it on, a generator spent about 0.7 µs more
    CPU per request (7 %, fast engine, 2-core machine; ``benchmarks/README.md``). Its
    profile of a generator says nothing anyway: one task, one long-running loop.
    """
    running = [pc for name in PROFILER_CALLBACKS
               if (pc := worker.periodic_callbacks.get(name)) is not None and pc.is_running()]
    for pc in running:
        worker.loop.add_callback(pc.stop)  # tornado's callbacks belong to the loop's thread

    def resume() -> None:
        for pc in running:
            worker.loop.add_callback(pc.start)

    return resume


async def _run(config: WorkerConfig, t0: float, write: Any, stop: Any, level: Any,
               worker: Any, key: Any, client: Any, run_key: str) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[SetLevel | Stop | None] = asyncio.Queue()
    finished = threading.Event()
    applied = [0]  # the sequence number of the level this generator runs at
    lock = threading.Lock()

    def put(cmd: SetLevel | Stop) -> None:
        loop.call_soon_threadsafe(commands.put_nowait, cmd)

    def set_level(payload: Any) -> None:
        """A level change ``[seq, value]``, pushed as an event or read from the variable:
        each applies once and an older one never after a newer one."""
        try:
            seq, value = int(payload[0]), float(payload[1])
        except (TypeError, ValueError, IndexError):
            return
        with lock:
            if seq <= applied[0]:
                return
            applied[0] = seq
        put(SetLevel(value=value))

    def watch() -> None:
        # The stop event's wait returns as soon as it is set; between stops, a level
        # change arrives as an event, and the variable is read once per wake in case
        # one went missing. Two round trips a second, not ten: they cost the scheduler
        # and this worker's event loop CPU that a co-located generator misses.
        while not finished.is_set():
            try:
                if stop.wait(timeout=WAKE_S):
                    put(Stop())
                    return
                payload = level.get(timeout=0.001)
            except TimeoutError:
                continue
            except Exception:  # the scheduler is gone: nobody will read what we send
                put(Stop())
                return
            set_level(payload)

    async def watch_release() -> None:
        # Dask says nothing to the task itself; its state on this worker is the sign.
        while True:
            await asyncio.sleep(POLL_S)
            if _released(worker, key):
                commands.put_nowait(Stop())
                return

    topic = level_topic(run_key)
    client.subscribe_topic(topic, lambda event: set_level(event[1]))
    watcher = threading.Thread(target=watch, name="lab-generator-watch", daemon=True)
    watcher.start()
    released = asyncio.create_task(watch_release())
    try:
        await run_share(config, t0, commands, write)
    finally:
        finished.set()
        released.cancel()
        client.unsubscribe_topic(topic)


def _released(worker: Any, key: Any) -> bool:
    """Whether the scheduler no longer wants this task (its client, the lab, is gone)."""
    ts = worker.state.tasks.get(key)
    return ts is None or ts.state not in ("executing", "long-running")
