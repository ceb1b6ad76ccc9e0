"""Operating-system limits the load generator runs into: open file descriptors."""

from __future__ import annotations

import resource

from lab.spec import LoadSpec

FD_OVERHEAD = 64
"""Descriptors a generator worker needs besides its connections (pipes, the event loop,
imported libraries' files)."""


def raise_nofile_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit.

    Child processes (the generator workers) inherit the raised limit.

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connections_per_worker(load: LoadSpec) -> int:
    """The most connections one generator worker may hold at once."""
    if load.model == "closed":
        peak = int(load.peak_level + 0.999)
    else:
        peak = load.connections or load.max_in_flight
    return -(-peak // (load.workers or 1))


def fd_budget_problem(load: LoadSpec) -> str | None:
    """Why this load cannot run under the open-file limit, or None when it can.

    Raises the soft limit first (see ``raise_nofile_limit``).
    """
    limit = raise_nofile_limit()
    needed = connections_per_worker(load) + FD_OVERHEAD
    if needed <= limit:
        return None
    what = "VUs" if load.model == "closed" else "connections (max_in_flight)"
    return (f"each generator worker would need {needed} open files for its {what}, but the "
            f"open-file limit is {limit}; raise it (ulimit -n), add generator workers "
            f"(workers = N), or lower the load")
