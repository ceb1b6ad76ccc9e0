"""Counting across uvicorn's worker processes: which server a process belongs to, and
counters every worker writes and any worker can sum.

uvicorn's worker processes share nothing but the listening socket, so a target that
wants figures for the whole server (requests per worker, requests in a handler now) keeps
them in a small memory-mapped file per process (``lab-<name>-<server pid>/<pid>`` in the
temporary directory), and whichever worker answers ``/stats`` sums the files of the live
ones. Used by ``targets.cpu`` and ``targets.replicas``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # not Linux, or the process is gone
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _uvicorn_workers(argv: list[str]) -> int | None:
    """The ``--workers`` of a uvicorn command line (default 1); None if it is not uvicorn."""
    if not any(part == "uvicorn" or part.endswith("/uvicorn") for part in argv[:3]):
        return None
    workers = os.environ.get("WEB_CONCURRENCY", "1")
    for i, part in enumerate(argv):
        if part == "--workers" and i + 1 < len(argv):
            workers = argv[i + 1]
        elif part.startswith("--workers="):
            workers = part.partition("=")[2]
    try:
        return max(1, int(workers))
    except ValueError:
        return 1


def server_layout() -> tuple[int, int]:
    """(pid that identifies this server, worker processes it runs), from the command lines.

    ``uvicorn --workers 1`` serves in its own process; with N > 1 the uvicorn process is
    a supervisor and the workers are its children (multiprocessing). Anything else (a
    test client, another server) counts as one process.
    """
    if _uvicorn_workers(_cmdline(os.getpid())) is not None:
        return os.getpid(), 1
    parent = _uvicorn_workers(_cmdline(os.getppid()))
    if parent is not None and parent > 1:
        return os.getppid(), parent
    return os.getpid(), 1


class SharedCounters:
    """This process's counters in a memory-mapped file beside its sibling workers' files.

    Each process writes only its own file (``lab-<name>-<server pid>/<pid>`` in the temp
    directory) and any process can sum them all. Files of dead processes are ignored and
    removed.

    Args:
        server_pid: the server's pid (``server_layout``): the workers of one server share it.
        fields: the counters' names, in the order ``read_all`` gives them.
        name: the target's name, in the directory's name.
    """

    def __init__(self, server_pid: int, fields: Sequence[str] = ("requests", "handlers_running"),
                 name: str = "cpu", root: Path | None = None) -> None:
        self.fields = tuple(fields)
        self._layout = struct.Struct(f"<{len(self.fields)}q")
        self._index = {f: i for i, f in enumerate(self.fields)}
        self.directory = (root or Path(tempfile.gettempdir())) / f"lab-{name}-{server_pid}"
        self.lock = threading.Lock()  # sync endpoints update from several threads
        self.directory.mkdir(exist_ok=True)
        self._file = self.directory / str(os.getpid())
        with open(self._file, "wb") as out:
            out.write(b"\0" * self._layout.size)
        with open(self._file, "r+b") as f:
            self._map: mmap.mmap | None = mmap.mmap(f.fileno(), self._layout.size)

    def add(self, name: str, delta: int = 1) -> None:
        """Add ``delta`` to one field of this process's counters."""
        self.add_many(**{name: delta})

    def add_many(self, **deltas: int) -> None:
        """Add each delta to its field of this process's counters, under one lock."""
        with self.lock:
            if self._map is None:
                return  # shutting down
            for name, delta in deltas.items():
                offset = 8 * self._index[name]
                (value,) = struct.unpack_from("<q", self._map, offset)
                struct.pack_into("<q", self._map, offset, value + delta)

    def totals(self) -> dict[str, int]:
        """Each field summed over the live worker processes."""
        per_pid = self.read_all()
        return {f: sum(values[i] for values in per_pid.values()) for i, f in enumerate(self.fields)}

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count one request and hold ``handlers_running`` up meanwhile."""
        self.add("requests")
        self.add("handlers_running")
        try:
            yield
        finally:
            self.add("handlers_running", -1)

    def read_all(self) -> dict[int, tuple[int, ...]]:
        """Every live process's fields, by pid (this process's included)."""
        found: dict[int, tuple[int, ...]] = {}
        for path in self.directory.iterdir():
            if not path.name.isdigit():
                continue
            pid = int(path.name)
            if not _alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            if len(raw) == self._layout.size:
                found[pid] = self._layout.unpack(raw)
        return found

    def close(self) -> None:
        """Remove this process's file (and the directory when it is the last one)."""
        with self.lock:
            if self._map is not None:
                self._map.close()
                self._map = None
            with contextlib.suppress(OSError):
                self._file.unlink()
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # fails while sibling workers still have files
