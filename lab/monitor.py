"""Resource sampling with psutil: the target's tree, each generator, the lab, the system.

A role's CPU percent is its cumulative CPU's change between two readings over the time
between them. The first reading of a role only primes the counters: it is reported with
``cpu_percent=None``, never as 0.

The cumulative CPU of a process tree (the target, each service) never falls, and counts
the children that live and die between two readings, which a tree of short-lived
workers (a pool of forked jobs, PostgreSQL's backend per connection) is made of. Each
process of the tree counts its own CPU plus that of the children it has reaped
(``cpu_times().children_user/children_system``: the kernel adds a child's CPU, and that of
the children it reaped, to its parent's when the parent waits for it; ``getrusage(2)``,
``RUSAGE_CHILDREN``). So when a child leaves the tree, its parent's reading takes over its
CPU: the whole of it, including what it spent after its last reading and any child never
read at all. A process that leaves the tree any other way (it is still running elsewhere,
or its parent did not take its CPU over: a parent ignoring SIGCHLD, whose children the
kernel reaps without adding their CPU to it) keeps its last reading in the total.

A process that has exited but is not yet reaped (a zombie) has no memory: psutil reads
zeros from ``/proc/PID/statm`` instead of raising. Its memory, threads and descriptors are
not read and it is not counted in ``processes``; its CPU, which the kernel keeps until it
is reaped, still counts. A role with no live process has no sample at all.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil

from lab.events import ResourceRole, ResourceSample

MIN_WINDOW_S = 0.25
"""Shortest window over which a CPU percent is reported."""

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


@dataclass
class _Tracked:
    """A process of a role at its last reading."""

    proc: psutil.Process
    ppid: int
    own_s: float
    """Its own user + system CPU-seconds."""
    children_s: float
    """CPU-seconds of the children it has reaped (0 for a single-process role)."""

    @property
    def cpu_s(self) -> float:
        return self.own_s + self.children_s


@dataclass
class _Memory:
    rss: int
    threads: int
    fds: int


@dataclass
class _Account:
    """The running CPU account of one role."""

    tracked: dict[int, _Tracked] = field(default_factory=dict)
    left_s: float = 0.0
    """CPU-seconds of processes that left the tree with no process in it taking them over."""
    total_s: float | None = None
    at: float | None = None
    """The cumulative CPU and the time (monotonic) the last CPU percent was measured from."""


def _read_cpu(proc: psutil.Process, tree: bool) -> tuple[float, float, int]:
    """(own CPU-s, reaped children's CPU-s or 0, ppid) of one process, read together."""
    with proc.oneshot():
        t = proc.cpu_times()
        children = float(t.children_user + t.children_system) if tree else 0.0
        return float(t.user + t.system), children, proc.ppid()


def _read_memory(proc: psutil.Process) -> _Memory | None:
    """Memory, threads and descriptors of a live process; None for one that has exited (a
    zombie, or one whose memory is already released: no user process has 0 bytes resident)."""
    with proc.oneshot():
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
        rss = proc.memory_info().rss
        threads = proc.num_threads()
        fds = proc.num_fds() if hasattr(proc, "num_fds") else 0
    return _Memory(rss, threads, fds) if rss > 0 else None


class ResourceSampler:
    """Samples the roles of one run.

    Args:
        run_key: the run the samples belong to.
        target_pid: root PID of the target (its whole tree is summed), or None.
        generator_pids: one PID per generator worker process.
        lab_pid: the lab's own process (default: this process).
        service_pids: name → root PID of each backing service (redis, postgres, apps);
            each tree is reported as role ``service`` with ``detail["service"]``.
        replica_pids: called at each reading: index → root PID of every replica that has
            a process now. Each tree is reported as role ``replica`` with
            ``detail["replica"]``, and all of them together as role ``target`` (whose CPU
            keeps what replicas that have ended spent, so it never falls).
        balancer_pid: the balancer's master process; its tree is role ``balancer``.
    """

    def __init__(self, run_key: str, target_pid: int | None, generator_pids: list[int],
                 lab_pid: int | None = None, service_pids: dict[str, int] | None = None,
                 replica_pids: Callable[[], dict[int, int]] | None = None,
                 balancer_pid: int | None = None) -> None:
        self.run_key = run_key
        self.service_pids = dict(service_pids or {})
        self.target_pid = target_pid
        self.replica_pids = replica_pids
        self.balancer_pid = balancer_pid
        self.generator_pids = list(generator_pids)
        self.lab_pid = lab_pid or os.getpid()
        self._accounts: dict[str, _Account] = {}
        self._last_t: float | None = None
        self.cores = psutil.cpu_count() or 1
        psutil.cpu_percent(percpu=True)  # prime the system counters

    def _role(self, t_s: float, role: ResourceRole, root_pid: int | Sequence[int], now: float,
              key: str, tree: bool, detail: dict[str, object] | None = None) -> ResourceSample | None:
        """One role's reading: ``root_pid`` (or several roots) and, for a ``tree`` role,
        their descendants."""
        acc = self._accounts.setdefault(key, _Account())
        procs: list[psutil.Process] = []
        roots = [root_pid] if isinstance(root_pid, int) else list(root_pid)
        for pid in roots:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                procs += [root, *(root.children(recursive=True) if tree else [])]
        shown_pid = root_pid if isinstance(root_pid, int) else None
        cpu_total, memory = self._account(acc, procs, tree)
        if not memory:
            return None
        pct = None
        if acc.at is None:
            acc.total_s, acc.at = cpu_total, now
        elif now - acc.at >= MIN_WINDOW_S:
            # CPU times tick at 10 ms: a percent over a few ms would be noise.
            pct = max(0.0, cpu_total - (acc.total_s or 0.0)) / (now - acc.at) * 100.0
            acc.total_s, acc.at = cpu_total, now
        return ResourceSample(
            run_key=self.run_key, t_s=round(t_s, 3), role=role, pid=shown_pid,
            cpu_percent=None if pct is None else round(pct, 2),
            cpu_seconds=round(cpu_total, 4), rss_bytes=sum(m.rss for m in memory),
            num_threads=sum(m.threads for m in memory), num_fds=sum(m.fds for m in memory),
            processes=len(memory), **({"detail": detail} if detail else {}),
        )

    def _account(self, acc: _Account, procs: Sequence[psutil.Process],
                 tree: bool) -> tuple[float, list[_Memory]]:
        """Read ``procs`` (parents before children) into ``acc``; returns the role's
        cumulative CPU-seconds and the memory of each live process."""
        before = acc.tracked
        now_tracked: dict[int, _Tracked] = {}
        memory: list[_Memory] = []
        gone: list[_Tracked] = []
        late: list[_Tracked] = []  # vanished after the listing: a parent may have been read first
        for proc in procs:
            old = before.get(proc.pid)
            if old is not None and old.proc != proc:  # the pid was reused: a new process
                gone.append(old)
                old = None
            try:
                own, children, ppid = _read_cpu(proc, tree)
                mem = _read_memory(proc)
            except psutil.AccessDenied:
                if old is not None:  # unreadable for now: its last reading stands
                    now_tracked[proc.pid] = old
                continue
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                if old is not None:
                    late.append(old)
                continue
            now_tracked[proc.pid] = _Tracked(proc if old is None else old.proc, ppid, own, children)
            if mem is not None:
                memory.append(mem)
        listed = {p.pid for p in procs}
        for pid, old in before.items():
            if pid not in listed:
                gone.append(old)
        self._settle(acc, before, now_tracked, gone, late, tree)
        acc.tracked = now_tracked
        return acc.left_s + sum(t.cpu_s for t in now_tracked.values()), memory

    def _settle(self, acc: _Account, before: dict[int, _Tracked], now_tracked: dict[int, _Tracked],
                gone: list[_Tracked], late: list[_Tracked], tree: bool) -> None:
        """Account for the processes that left the tree since the last reading.

        One reaped by a process still in the tree (its parent, or an ancestor through
        parents that left too) is taken over by that process's children CPU; the others,
        and any share of a taken-over reading that the taker's children CPU did not grow
        by, stay in ``acc.left_s``.
        """
        takers: dict[int, float] = {}
        for old, vanished_late in [*((g, False) for g in gone), *((g, True) for g in late)]:
            still_running = False
            with contextlib.suppress(psutil.Error):
                still_running = old.proc.is_running() and old.proc.status() != psutil.STATUS_ZOMBIE
            taker = None if still_running or not tree else self._taker(old, before, now_tracked)
            if taker is None:
                acc.left_s += old.cpu_s
                continue
            takers[taker] = takers.get(taker, 0.0) + old.cpu_s
            if vanished_late:
                # Read the taker again, after the child vanished: its first reading may
                # predate the reaping.
                with contextlib.suppress(*_GONE):
                    t = now_tracked[taker]
                    t.own_s, t.children_s, t.ppid = _read_cpu(t.proc, tree)
        for pid, expected in takers.items():
            prev = before.get(pid)
            grew = now_tracked[pid].children_s - prev.children_s if prev is not None else 0.0
            if grew + 0.01 < expected:  # CPU times tick at 10 ms
                acc.left_s += expected - max(grew, 0.0)

    @staticmethod
    def _taker(old: _Tracked, before: dict[int, _Tracked],
               now_tracked: dict[int, _Tracked]) -> int | None:
        """The pid of the closest ancestor of ``old`` still in the tree, through ancestors
        that left it too (by their last readings), or None."""
        ppid, seen = old.ppid, {old.proc.pid}
        while ppid not in seen:
            if ppid in now_tracked:
                return ppid
            seen.add(ppid)
            parent = before.get(ppid)
            if parent is None:
                return None
            ppid = parent.ppid
        return None

    def sample(self, t_s: float) -> list[ResourceSample]:
        """Read every role now. ``t_s`` is the time since the load began."""
        now = time.monotonic()
        out: list[ResourceSample | None] = []
        if self.target_pid is not None:
            out.append(self._role(t_s, "target", self.target_pid, now, "target", tree=True))
        if self.replica_pids is not None:
            replicas = self.replica_pids()
            for index, rpid in sorted(replicas.items()):
                out.append(self._role(t_s, "replica", rpid, now, f"replica:{index}", tree=True,
                                      detail={"replica": index}))
            out.append(self._role(t_s, "target", list(replicas.values()), now, "target", tree=True,
                                  detail={"replicas": len(replicas)}))
        if self.balancer_pid is not None:
            out.append(self._role(t_s, "balancer", self.balancer_pid, now, "balancer", tree=True))
        for name, spid in self.service_pids.items():
            out.append(self._role(t_s, "service", spid, now, f"service:{name}", tree=True,
                                  detail={"service": name}))
        # A generator worker and the lab are one process each: the lab's children are the
        # other roles.
        for gpid in self.generator_pids:
            out.append(self._role(t_s, "generator", gpid, now, f"generator:{gpid}", tree=False))
        out.append(self._role(t_s, "lab", self.lab_pid, now, "lab", tree=False))
        out.append(self._system(t_s, now))
        self._last_t = now
        return [s for s in out if s is not None]

    def _system(self, t_s: float, now: float) -> ResourceSample:
        per_core = psutil.cpu_percent(percpu=True)
        times = psutil.cpu_times()
        busy = float(times.user + times.system + getattr(times, "nice", 0.0)
                     + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0))
        mem = psutil.virtual_memory()
        priming = self._last_t is None or now - self._last_t < MIN_WINDOW_S
        return ResourceSample(
            run_key=self.run_key, t_s=round(t_s, 3), role="system", pid=None,
            cpu_percent=None if priming else round(sum(per_core), 2),
            cpu_seconds=round(busy, 3), rss_bytes=int(mem.used), num_threads=0, num_fds=0,
            processes=0,
            detail={"per_core_percent": per_core, "memory_total_bytes": int(mem.total),
                    "memory_available_bytes": int(mem.available), "cores": self.cores},
        )
