"""``lab doctor``: what this machine has, and what on it changes results.

Each check is a plain ``Check`` (name, value, status, advice); the CLI renders them as a
table or JSON. Nothing here starts a service or sends a request.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import psutil

from lab.spec import EXPERIMENTS_ENV, SpecError, load_experiment
from lab.topology.services import find_components

Status = Literal["ok", "warn", "missing", "info"]


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    value: str
    status: Status
    advice: str = ""
    """What to do about a ``warn`` or ``missing``; what it affects for ``info``."""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup v2 quota (``cpu.max``), or None when unlimited."""
    raw = _read("/sys/fs/cgroup/cpu.max")
    if not raw:
        return None
    quota, _, period = raw.partition(" ")
    if quota == "max" or not period:
        return None
    try:
        return int(quota) / int(period)
    except ValueError:
        return None


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def database_check(db_path: str | Path) -> Check:
    """The results database the other commands would use: where, how big, which schema,
    how many runs, and whether SQLite finds it sound (``PRAGMA quick_check``: every page
    and index read). Opened read-only; a missing file is not created."""
    from lab.store import SCHEMA_VERSION, Store, StoreError

    path = Path(db_path)
    shown = str(path.resolve()) if str(db_path) else "''"
    if not str(db_path):
        return Check("results database", "--db is empty", "warn", "give a file path, or unset LAB_DB")
    if not path.exists():
        return Check("results database", f"{shown}: not created yet", "info",
                     "the first 'lab run' creates it (--db PATH or LAB_DB to put it elsewhere)")
    if not path.is_file():
        return Check("results database", f"{shown}: not a file", "warn",
                     "pass --db with a file path (or set LAB_DB)")
    try:
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        with Store(path, readonly=True) as store:
            try:
                damage = store.check()
            except StoreError as exc:  # so damaged the check itself stops
                damage = [str(exc.__cause__ or exc)]
            version = store.schema_version
            runs = len(store.list_runs()) if not damage else 0
    except (StoreError, OSError) as exc:
        message = str(exc).removeprefix(f"{db_path}: ").removeprefix(f"{path}: ")
        return Check("results database", f"{shown}: {message}", "warn",
                     "the commands refuse this file; pass --db with another path")
    if damage:
        more = f" (and {len(damage) - 1} more)" if len(damage) > 1 else ""
        return Check("results database", f"{shown}: damaged: {damage[0]}{more}", "warn",
                     "SQLite's quick_check failed: lab run refuses the file, commands that read "
                     "the damaged part fail; sqlite3's .recover command saves what is left")
    schema = f"schema {version}" + ("" if version == SCHEMA_VERSION else
                                    f" (this lab writes {SCHEMA_VERSION}; upgraded on the next run)")
    return Check("results database", f"{shown}: {_size(size)}, {schema}, "
                 f"{runs} run{'s' if runs != 1 else ''}", "ok")


def _uses(folder: Path | None = None) -> dict[str, str]:
    """Which experiments in ``folder`` (default: ``./experiments`` and ``$LAB_EXPERIMENTS``,
    where ``lab run NAME`` looks) and which tools use each backing program, as ``lab
    doctor`` says it: ``caching (redis), async-queue (redis)``."""
    found: dict[str, list[str]] = {"redis": [], "postgres": [], "nginx": []}
    folders = [folder] if folder is not None else [Path("experiments")] + (
        [Path(os.environ[EXPERIMENTS_ENV])] if os.environ.get(EXPERIMENTS_ENV) else [])
    files = {p.resolve(): p for f in folders if f.is_dir() for p in sorted(f.glob("*.toml"))}
    for path in files.values():
        try:
            variants = load_experiment(path).resolved_variants()
        except SpecError:
            continue
        for name, needs in (("redis", [v.name for v in variants if v.services.redis != "off"]),
                            ("postgres", [v.name for v in variants if v.services.postgres != "off"]),
                            ("nginx", [v.name for v in variants if v.balancer is not None])):
            if needs:
                shown = "" if len(needs) == len(variants) else f" ({', '.join(needs)})"
                found[name].append(path.stem + shown)
    found["nginx"].append("benchmarks/generator.py (else a uvicorn target)")
    return {name: ", ".join(items) or "no experiment here" for name, items in found.items()}


def checks(db_path: str | Path | None = None) -> list[Check]:
    """Every check, in display order; ``db_path``: also check that results database."""
    out: list[Check] = []
    components = find_components()
    uses = _uses()
    for name, label in (("redis", "redis-server"), ("postgres", "PostgreSQL"), ("nginx", "nginx")):
        c = components[name]
        if c.usable:
            out.append(Check(label, f"{c.version or 'present'} at {c.path}", "ok",
                             f"used by {uses[name]}"))
        else:
            out.append(Check(label, "missing" if c.path is None else "unusable", "missing",
                             f"{c.problem}; needed by {uses[name]}"))

    logical = psutil.cpu_count() or 1
    physical = psutil.cpu_count(logical=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    cpu_value = f"{logical} logical, {physical or '?'} physical, {usable} usable by the lab"
    quota = _cgroup_cpu_limit()
    if quota is not None:
        cpu_value += f", cgroup quota {quota:g} CPUs"
    cpu_status: Status = "warn" if logical < 2 or (quota is not None and quota < 2) else "ok"
    out.append(Check("CPU cores", cpu_value, cpu_status,
                     "the target and the load generator share these cores; with fewer than 2 "
                     "the generator steals CPU from the target" if cpu_status == "warn" else
                     "generator workers default to the cores left after the target"))
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        out.append(Check("CPU frequency governor", governor, "ok" if governor == "performance" else "warn",
                         "" if governor == "performance" else
                         "frequency scaling adds noise; 'performance' gives steadier figures"))
    load1, _, _ = os.getloadavg()
    busy = load1 > 0.5 * logical
    out.append(Check("load average (1 min)", f"{load1:.2f}", "warn" if busy else "ok",
                     "other work on this machine competes with the experiment" if busy else ""))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    shown_hard = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    out.append(Check("open-file limit", f"soft {soft}, hard {shown_hard}",
                     "warn" if hard != resource.RLIM_INFINITY and hard < 4096 else "ok",
                     "the lab raises the soft limit to the hard one; each VU or connection "
                     "needs one file descriptor"))
    mem = psutil.virtual_memory()
    out.append(Check("memory", f"{mem.total / 2**30:.1f} GiB total, {mem.available / 2**30:.1f} GiB free",
                     "warn" if mem.available < 512 * 2**20 else "ok"))
    swap = psutil.swap_memory()
    if swap.total:
        out.append(Check("swap", f"{swap.used / 2**20:.0f} MiB used of {swap.total / 2**20:.0f} MiB",
                         "warn" if swap.used > 0 else "info",
                         "swapping makes latency figures meaningless" if swap.used else ""))

    out.append(Check("Python", f"{platform.python_version()} ({sys.executable})", "ok"))
    for module, why in (("uvloop", "faster event loop for the load generator"),
                        ("httptools", "the fast client engine's HTTP parser"),
                        ("distributed", "generator workers on a Dask cluster (lab run --cluster)")):
        try:
            __import__(module)
            out.append(Check(module, "installed", "ok", why))
        except ImportError:
            out.append(Check(module, "missing", "warn", f"pip install {module}: {why}"))
    out.append(Check("user", "root" if os.geteuid() == 0 else str(os.geteuid()), "info",
                     "PostgreSQL is run as the 'postgres' user when the lab is root"
                     if os.geteuid() == 0 else ""))
    if db_path is not None:
        out.append(database_check(db_path))
    return out
