"""The engine's side of generators on a Dask cluster, with ``lab.pool.GeneratorPool``'s
interface: ``start``, ``messages`` (the same ``WorkerMessage`` stream), ``broadcast``,
``close``, ``describe_exit``.

One long-running task per generator worker (``lab.cluster.task.generator_task``), pinned
to its Dask worker. Their reports arrive as Dask events on the run's topic and are decoded
into the messages a local worker's stdout gives; a worker that leaves the cluster (the
scheduler logs ``remove-worker`` on the worker's own topic) or a task that raises ends that
generator with the reason. The Dask client runs on its own thread (a synchronous
``distributed.Client``), so nothing of Dask runs on the engine's event loop; its calls go
through one command thread, in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time
from typing import Any

from lab.cluster.address import ClusterAddress
from lab.cluster.checks import ClusterError, WorkerFacts, cannot_reach, check_workers, connect
from lab.cluster.local import LocalDaskCluster
from lab.cluster.task import (
    generator_task,
    level_name,
    level_topic,
    reports_topic,
    scheduler_offset_s,
    start_name,
    stop_name,
)
from lab.errors import GeneratorError
from lab.events import GeneratorInfo
from lab.load.wire import (
    Ready,
    SetLevel,
    Start,
    Stop,
    WireError,
    WorkerConfig,
    decode_report,
    encode,
)
from lab.pool import Exited, Malformed, WorkerMessage

__all__ = ["ClusterPool"]

READY_TIMEOUT_S = 30.0
"""How long every generator task has to start and say it is ready."""
LOCAL_WORKERS_TIMEOUT_S = 30.0


class ClusterPool:
    """Generator workers as tasks on a Dask cluster.

    Args:
        config: the worker config; each generator gets it with its own ``index``.
        cluster: where the cluster is, or ``local:N`` to start one for the run.
        run_key: the run's key (names its topic, variables and event).
        cap: the most generators the load can be split over (``plan.generator_worker_cap``).
    """

    start_delay_s = 0.5
    """Between the start command and t0: the start time crosses the scheduler."""
    source = "dask"

    def __init__(self, config: WorkerConfig, cluster: ClusterAddress, run_key: str,
                 cap: int | None = None) -> None:
        self.config = config
        self.address = cluster
        self.cluster = cluster.text
        """As the user named it."""
        self.run_key = run_key
        self.cap = cap
        self.workers = 0
        self.messages: asyncio.Queue[WorkerMessage] = asyncio.Queue()
        self.local: LocalDaskCluster | None = None
        self.scheduler = cluster.text
        self.client: Any = None
        self.facts: list[WorkerFacts] = []
        self.generators: list[GeneratorInfo] = []
        self._futures: list[Any] = []
        self._reasons: dict[int, str] = {}
        self._offset_s = 0.0
        self._commands = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lab-dask")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._topics: list[str] = []
        self._level_seq = 0

    @property
    def pids(self) -> list[int]:
        """The generators that run on this machine (their CPU is sampled like local workers')."""
        return [g.pid for g, f in zip(self.generators, self.facts, strict=False) if f.local and g.pid]

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._commands, fn, *args)

    async def start(self) -> None:
        """Start the local cluster (``local:N``), connect, check the workers, submit one
        generator task to each and wait until each says it is ready.

        Raises:
            GeneratorError: the cluster cannot run the generators (the message names the
                address and what is wrong), or a generator did not start within 30 s.
        """
        self._loop = asyncio.get_running_loop()
        if self.address.local_workers is not None:
            self.local = LocalDaskCluster(self.address.local_workers)
            await self.local.start()
            self.scheduler = self.local.address
        try:
            self.client = await self._call(connect, self.scheduler)
            if self.local is not None:
                await self._call(self._wait_local_workers)
            facts = await self._call(check_workers, self.client, self.cluster)
        except ClusterError as exc:
            raise GeneratorError(str(exc)) from None
        chosen = [f for f in facts if f.loadgen] or facts
        self.facts = chosen[: self.cap] if self.cap else chosen
        self.workers = len(self.facts)
        far = cannot_reach(self.facts, self.config.base_url)
        if far is not None:
            raise GeneratorError(
                f"--cluster {self.cluster}: the target {self.config.base_url} listens on this "
                f"machine's loopback only, which worker {far.address} on {far.host} cannot reach")
        await self._call(self._submit)
        await self._await_ready()

    def _wait_local_workers(self) -> None:
        assert self.local is not None
        try:
            self.client.wait_for_workers(self.local.workers, timeout=LOCAL_WORKERS_TIMEOUT_S)
        except TimeoutError:
            exited = self.local.exited()
            raise ClusterError(f"--cluster {self.cluster}: the local Dask workers did not "
                               f"join within {LOCAL_WORKERS_TIMEOUT_S:g} s"
                               + (f" (workers {exited} exited)" if exited else "")) from None

    def _submit(self) -> None:
        client = self.client
        self._offset_s, _ = scheduler_offset_s(client)
        topic = reports_topic(self.run_key)
        client.subscribe_topic(topic, self._on_report)
        self._topics.append(topic)
        for index, fact in enumerate(self.facts):
            client.subscribe_topic(fact.address, self._worker_event(index, fact))
            self._topics.append(fact.address)
        for index, fact in enumerate(self.facts):
            config = dataclasses.replace(self.config, index=index, workers=self.workers)
            future = client.submit(
                generator_task, encode(config).decode(), self.run_key, READY_TIMEOUT_S,
                key=f"lab-generator-{self.run_key}-{index}", workers=[fact.address],
                allow_other_workers=False, pure=False, retries=0,
                resources={"loadgen": 1} if fact.loadgen else None)
            future.add_done_callback(self._task_ended(index, fact))
            self._futures.append(future)

    def _put(self, message: WorkerMessage) -> None:
        """From a Dask thread: queue a message for the engine's loop."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.messages.put_nowait, message)

    def _on_report(self, event: tuple[float, Any]) -> None:
        _, payload = event
        if not isinstance(payload, dict) or not isinstance(payload.get("i"), int):
            return
        index = payload["i"]
        try:
            msg: Any = decode_report(str(payload.get("line", "")))
        except WireError as exc:
            msg = Malformed(exc)
        self._put(WorkerMessage(index, msg))

    def _worker_event(self, index: int, fact: WorkerFacts) -> Any:
        def handle(event: tuple[float, Any]) -> None:
            _, payload = event
            if isinstance(payload, dict) and payload.get("action") == "remove-worker":
                self._reasons.setdefault(
                    index, f"generator worker {index} lost: Dask worker {fact.address} on "
                           f"{fact.host} left the cluster")
                self._put(WorkerMessage(index, Exited()))
        return handle

    def _task_ended(self, index: int, fact: WorkerFacts) -> Any:
        def ended(future: Any) -> None:
            if future.status != "error":
                return
            with contextlib.suppress(Exception):
                exc = future.exception(timeout=1)
                self._reasons.setdefault(
                    index, f"generator worker {index} on {fact.host} ({fact.address}) failed: "
                           f"{type(exc).__name__}: {exc}")
            self._put(WorkerMessage(index, Exited()))
        return ended

    async def _await_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        ready: dict[int, Ready] = {}
        while len(ready) < self.workers:
            try:
                m = await asyncio.wait_for(self.messages.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                missing = [self.facts[i].address for i in range(self.workers) if i not in ready]
                raise GeneratorError(f"--cluster {self.cluster}: generator tasks on "
                                     f"{', '.join(missing)} did not start within "
                                     f"{READY_TIMEOUT_S:g} s (is each worker's thread busy?)") from None
            if isinstance(m.msg, Ready):
                ready[m.index] = m.msg
            elif isinstance(m.msg, Exited):
                raise GeneratorError(self.describe_exit(m.index))
            elif isinstance(m.msg, Malformed):
                raise GeneratorError(self.describe_malformed(m.index, m.msg.error))
        self.generators = [GeneratorInfo(i, r.host or self.facts[i].host, r.pid, self.facts[i].address,
                                         r.clock_offset_ms) for i, r in sorted(ready.items())]

    def describe_exit(self, index: int) -> str:
        return self._reasons.get(index, f"generator worker {index} ended without a report")

    @staticmethod
    def describe_malformed(index: int, error: WireError) -> str:
        return f"generator worker {index} sent a {error}"

    def broadcast(self, msg: Start | SetLevel | Stop) -> None:
        """Send a command to every generator, in order with the ones before it."""
        if self.client is None:
            return
        with contextlib.suppress(RuntimeError):  # closed already
            self._commands.submit(self._command, msg)

    def _command(self, msg: Start | SetLevel | Stop) -> None:
        from distributed import Event, Variable

        client = self.client
        with contextlib.suppress(Exception):
            if isinstance(msg, Start):
                t0_scheduler = time.time() + (msg.t0 - time.monotonic()) + self._offset_s
                Variable(start_name(self.run_key), client=client).set(t0_scheduler)
            elif isinstance(msg, SetLevel):
                # Pushed as an event, kept in the variable; the sequence number lets each
                # generator apply a change once and never an older one after a newer one.
                self._level_seq += 1
                change = [self._level_seq, msg.value]
                Variable(level_name(self.run_key), client=client).set(change)
                client.log_event(level_topic(self.run_key), change)
            else:
                Event(stop_name(self.run_key), client=client).set()

    async def close(self) -> None:
        """Stop every generator, wait up to 3 s for their tasks to end, then let go of the
        cluster (and end it, for ``local:N``)."""
        if self.client is not None:
            self.broadcast(Stop())
            with contextlib.suppress(Exception):
                await self._call(self._release)
        self._commands.shutdown(wait=False, cancel_futures=True)
        if self.local is not None:
            await self.local.stop()

    def _release(self) -> None:
        from distributed import Variable, wait

        client = self.client
        with contextlib.suppress(Exception):
            wait(self._futures, timeout=3.0)
        with contextlib.suppress(Exception):
            client.cancel(self._futures, force=True)
        for topic in self._topics:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(topic)
        for name in (start_name(self.run_key), level_name(self.run_key)):
            with contextlib.suppress(Exception):
                Variable(name, client=client).delete()
        with contextlib.suppress(Exception):
            client.close(timeout=3)
