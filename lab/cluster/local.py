"""``--cluster local:N``: a Dask scheduler and N workers on this machine, started for a run.

The same programs a two-host set-up runs (``dask scheduler``, ``dask worker``), each a
child of the lab (``lab.procs.spawn``: its own session, a parent-death signal), on free
127.0.0.1 ports, in a temporary directory with the lab's owner file, so a lab killed with
SIGKILL leaves nothing running and the next run removes the directory. Workers run
without a nanny: a worker that dies stays dead (and the run says so), as a remote
machine's would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from lab.errors import GeneratorError
from lab.procs import spawn, terminate_tree, this_lab
from lab.topology.services import DASK_DIR_PREFIX, OWNER_FILE
from lab.topology.targets import free_port

__all__ = ["LocalDaskCluster", "worker_argv"]

START_TIMEOUT_S = 30.0


def worker_argv(scheduler: str, name: str, directory: Path) -> list[str]:
    """The command of one generator worker: one process, one thread, one ``loadgen``
    resource (what the README asks of a remote machine's ``dask worker`` too)."""
    return [sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
            "--nthreads", "1", "--no-nanny", "--resources", "loadgen=1",
            "--host", "127.0.0.1", "--no-dashboard", "--name", name,
            "--local-directory", str(directory), "--death-timeout", "10"]


class LocalDaskCluster:
    """A scheduler and ``workers`` Dask workers, all on 127.0.0.1.

    Args:
        workers: how many worker processes, 1..64.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.directory = Path(tempfile.mkdtemp(prefix=DASK_DIR_PREFIX))
        (self.directory / OWNER_FILE).write_text(json.dumps(this_lab()))
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[asyncio.subprocess.Process] = []
        self._tails: list[deque[str]] = []
        self._readers: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        """The worker processes' pids (the scheduler's is first in ``procs``)."""
        return [p.pid for p in self.procs[1:]]

    async def start(self) -> None:
        """Start the scheduler and the workers side by side (a worker retries until the
        scheduler listens) and wait until the scheduler accepts connections.

        Raises:
            GeneratorError: ``distributed`` is missing, or a process exited at once.
        """
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise GeneratorError("--cluster local:N needs Dask distributed: pip install distributed") \
                from None
        argvs = [[sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                  "--port", str(self.port), "--no-dashboard"]]
        argvs += [worker_argv(self.address, f"lab-generator-{i}", self.directory / f"worker-{i}")
                  for i in range(self.workers)]
        for argv in argvs:
            proc = await spawn(argv, cwd=str(self.directory), stdout=asyncio.subprocess.DEVNULL,
                               stderr=asyncio.subprocess.PIPE)
            self.procs.append(proc)
            tail: deque[str] = deque(maxlen=5)
            self._tails.append(tail)
            self._readers.append(asyncio.create_task(_read_tail(proc, tail)))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            for i, proc in enumerate(self.procs):
                if proc.returncode is not None:
                    what = "scheduler" if i == 0 else f"worker {i - 1}"
                    raise GeneratorError(f"local Dask {what} exited with code {proc.returncode}: "
                                         f"{' | '.join(self._tails[i]) or '(no stderr)'}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise GeneratorError(f"the local Dask scheduler did not listen within {START_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

    def exited(self) -> list[int]:
        """Indexes of the workers whose process has exited."""
        return [i - 1 for i, p in enumerate(self.procs) if i > 0 and p.returncode is not None]

    async def stop(self) -> None:
        """End every process of the cluster and remove its directory."""
        await asyncio.gather(*(terminate_tree(p, grace_s=3.0) for p in reversed(self.procs)),
                             return_exceptions=True)
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        shutil.rmtree(self.directory, ignore_errors=True)


async def _read_tail(proc: asyncio.subprocess.Process, tail: deque[str]) -> None:
    assert proc.stderr is not None
    while True:
        line = await proc.stderr.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip()
        if "Error" in text or "error" in text or "Exception" in text:
            tail.append(text)
