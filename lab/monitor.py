"""Resource sampling with psutil: the target's tree, each generator, the lab, the system.

CPU percent is computed from cumulative CPU-time deltas between readings (what psutil's
``cpu_percent`` does internally), which lets a child that appears between two readings
count from its creation instead of reading 0 on its first sample. The first reading of a
run only primes the counters: it is reported with ``cpu_percent=None``, never as 0.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import psutil

from lab.events import ResourceRole, ResourceSample

MIN_WINDOW_S = 0.25
"""Shortest window over which a CPU percent is reported."""


@dataclass
class _Tracked:
    proc: psutil.Process
    cpu_s: float
    at: float


def _cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


class ResourceSampler:
    """Samples the roles of one run.

    Args:
        run_key: the run the samples belong to.
        target_pid: root PID of the target (its whole tree is summed), or None.
        generator_pids: one PID per generator worker process.
        lab_pid: the lab's own process (default: this process).
        service_pids: name → root PID of each backing service (redis, postgres, apps);
            each tree is reported as role ``service`` with ``detail["service"]``.
    """

    def __init__(self, run_key: str, target_pid: int | None, generator_pids: list[int],
                 lab_pid: int | None = None, service_pids: dict[str, int] | None = None) -> None:
        self.run_key = run_key
        self.service_pids = dict(service_pids or {})
        self.target_pid = target_pid
        self.generator_pids = list(generator_pids)
        self.lab_pid = lab_pid or os.getpid()
        self._tracked: dict[int, _Tracked] = {}
        self._dead_cpu_s: dict[str, float] = {}
        self._last_t: float | None = None
        self.cores = psutil.cpu_count() or 1
        psutil.cpu_percent(percpu=True)  # prime the system counters

    def _read(self, pid: int, now: float, role_key: str) -> tuple[float | None, float, psutil.Process] | None:
        """(cpu_percent or None when priming, cumulative cpu_s, process) of one pid."""
        tracked = self._tracked.get(pid)
        try:
            if tracked is None:
                proc = psutil.Process(pid)
                cpu = _cpu_s(proc)
                first_sample = self._last_t is None
                # A process born after the previous reading spent all its CPU inside the
                # window; one that was already there at the first reading only primes.
                since = max(proc.create_time(), 0.0)
                at = time.time() - (time.monotonic() - now)
                self._tracked[pid] = _Tracked(proc, cpu, now)
                if first_sample or since <= 0:
                    return None, cpu, proc
                window = max(at - since, 1e-3)
                return min(cpu / window * 100.0, 100.0 * self.cores), cpu, proc
            cpu = _cpu_s(tracked.proc)
            dt = now - tracked.at
            if dt < MIN_WINDOW_S:
                # CPU times tick at 10 ms: a percent over a few ms would be noise.
                return None, cpu, tracked.proc
            pct = (cpu - tracked.cpu_s) / dt * 100.0
            tracked.cpu_s, tracked.at = cpu, now
            return max(pct, 0.0), cpu, tracked.proc
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            if tracked is not None:
                self._dead_cpu_s[role_key] = self._dead_cpu_s.get(role_key, 0.0) + tracked.cpu_s
                del self._tracked[pid]
            return None

    def _role(self, t_s: float, role: ResourceRole, pids: list[int], now: float,
              report_pid: int | None, key: str,
              detail: dict[str, object] | None = None) -> ResourceSample | None:
        pct_sum: float | None = None
        priming = False
        cpu_total = self._dead_cpu_s.get(key, 0.0)
        rss = threads = fds = 0
        n = 0
        for pid in pids:
            got = self._read(pid, now, key)
            if got is None:
                continue
            pct, cpu, proc = got
            try:
                with proc.oneshot():
                    p_rss = proc.memory_info().rss
                    p_threads = proc.num_threads()
                    p_fds = proc.num_fds() if hasattr(proc, "num_fds") else 0
            except psutil.Error:
                continue  # exiting (a zombie has CPU times but no memory): not a reading
            rss, threads, fds = rss + p_rss, threads + p_threads, fds + p_fds
            n += 1
            cpu_total += cpu
            if pct is None:
                priming = True
            else:
                pct_sum = (pct_sum or 0.0) + pct
        if n == 0:
            return None
        return ResourceSample(
            run_key=self.run_key, t_s=round(t_s, 3), role=role, pid=report_pid,
            cpu_percent=None if priming else round(pct_sum or 0.0, 2),
            cpu_seconds=round(cpu_total, 4), rss_bytes=rss, num_threads=threads,
            num_fds=fds, processes=n, **({"detail": detail} if detail else {}),
        )

    def sample(self, t_s: float) -> list[ResourceSample]:
        """Read every role now. ``t_s`` is the time since the load began."""
        now = time.monotonic()
        out: list[ResourceSample] = []
        if self.target_pid is not None:
            pids = [self.target_pid]
            with contextlib.suppress(psutil.Error):
                pids += [c.pid for c in psutil.Process(self.target_pid).children(recursive=True)]
            s = self._role(t_s, "target", pids, now, self.target_pid, "target")
            if s:
                out.append(s)
        for name, spid in self.service_pids.items():
            pids = [spid]
            with contextlib.suppress(psutil.Error):
                pids += [c.pid for c in psutil.Process(spid).children(recursive=True)]
            s = self._role(t_s, "service", pids, now, spid, f"service:{name}", {"service": name})
            if s:
                out.append(s)
        for gpid in self.generator_pids:
            s = self._role(t_s, "generator", [gpid], now, gpid, f"generator:{gpid}")
            if s:
                out.append(s)
        s = self._role(t_s, "lab", [self.lab_pid], now, self.lab_pid, "lab")
        if s:
            out.append(s)
        out.append(self._system(t_s, now))
        self._last_t = now
        return out

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
