"""Process lifetimes: spawn children that die with the lab, and end whole trees.

Every subprocess the lab starts goes through ``spawn`` and is ended by ``terminate_tree``
on every exit path. Children get their own session, so a Ctrl-C in the terminal reaches
only the lab, which then stops them in order; on Linux they also get a parent-death
signal, so even a lab killed with SIGKILL leaves no orphan behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_setup(cpus: frozenset[int] | None, user: int | None,
                 group: int | None) -> Callable[[], None]:
    def setup() -> None:  # pragma: no cover - runs in the child before exec
        # Credentials first: changing them clears the parent-death signal.
        if group is not None:
            os.setgroups([])
            os.setgid(group)
        if user is not None:
            os.setuid(user)
        _die_with_parent()
        if cpus and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cpus)
    return setup


async def spawn(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    user: int | None = None,
    group: int | None = None,
    cpus: frozenset[int] | None = None,
) -> asyncio.subprocess.Process:
    """Start a child process in its own session, tied to the lab's life.

    Args:
        user, group: run the child as this uid/gid (the lab must be root).
        cpus: pin the child (and so every process it forks) to these CPU cores.

    Raises:
        OSError: the executable could not be started.
    """
    return await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_child_setup(cpus, user, group),
    )


def this_lab() -> dict[str, object]:
    """Who this lab process is, as stored with what it owns (its runs, its services' temp
    dirs) so a later lab can tell with ``owner_alive`` whether the owner is gone:
    ``{"pid", "started_at_unix" (psutil ``create_time()``), "host"}``."""
    return {"pid": os.getpid(), "started_at_unix": psutil.Process(os.getpid()).create_time(),
            "host": socket.gethostname()}


def owner_alive(pid: int | None, started_at_unix: float | None = None,
                started_by_unix: float | None = None) -> bool:
    """Whether the lab process that owns something (a run, a service directory) still runs.

    Args:
        pid: the owner's pid.
        started_at_unix: the owner's start time as psutil reports it (``create_time()``);
            a process with this pid that started at another time is a newer process the
            kernel gave the pid to, not the owner.
        started_by_unix: when the start time was not recorded: the owner had started by
            then (a process with this pid that started later is not it).

    Returns:
        False when the owner is gone; True when it runs, or when that cannot be told
        (a process we may not inspect), so nothing of a live lab is ever taken for dead.
    """
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.AccessDenied:
        return True
    except psutil.Error:
        return False
    if started_at_unix is not None:
        # create_time() is derived from the boot time and the start tick: stable to 10 ms.
        return abs(created - started_at_unix) < 0.5
    if started_by_unix is not None:
        return created <= started_by_unix + 1.0
    return True


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    try:
        root = psutil.Process(pid)
        return [pid] + [c.pid for c in root.children(recursive=True)]
    except psutil.Error:
        return []


async def terminate_tree(proc: asyncio.subprocess.Process, grace_s: float = 5.0) -> int | None:
    """End a child and all its descendants: SIGTERM, then SIGKILL to whatever of the tree
    still runs ``grace_s`` later.

    Descendants are collected before signalling, so children that the root would
    otherwise leave behind (uvicorn workers) are ended too. One grace period covers the
    whole tree: a root that ignores SIGTERM (uvicorn waiting for requests that never
    finish) is killed ``grace_s`` after it, not after a second wait for its children.

    Returns:
        The child's exit code (negative for a signal), or None if it could not be reaped.
    """
    pids = tree_pids(proc.pid)
    procs: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    deadline = time.monotonic() + grace_s
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace_s)
    alive = await _until_ended(procs, max(0.0, deadline - time.monotonic()))
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            return None
    if alive:
        await _until_ended(alive, 2.0)
    return proc.returncode


def _running(p: psutil.Process) -> bool:
    """Whether ``p`` still runs: a zombie has ended, whoever reaps it and when."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def _until_ended(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to ``timeout_s`` for ``procs`` to end; return those still running.

    Not ``psutil.wait_procs``: it waits for a grandchild (a uvicorn worker) to be reaped,
    which is init's job once its parent has exited; on the lab's VM init took 1.8–1.9 s
    to do it, and every stop of a multi-worker target waited that long for nothing.
    """
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        alive = [p for p in alive if _running(p)]
    return alive
