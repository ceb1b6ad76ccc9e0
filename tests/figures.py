"""Reading a run's figures in tests: target stats that say what is missing instead of a
KeyError, and the CPU a run's target used against the CPU the machine left idle.

Tests that compare variants run one after another on a machine whose other load comes
and goes, so a throughput ratio between two runs says as much about that load as about
the target. What does not depend on it: figures the target itself counts (queries,
connections, handlers at once), CPU-seconds per request, ceilings (one process with the
GIL never uses more than one core), and whether a target that could use more CPU left
any of the machine idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.store import ResourceRow, Store


def target_stat(run: dict[str, Any], *path: str) -> Any:
    """``run["target_stats"][path[0]][path[1]]…`` of a run in ``lab run --format json``
    output; a missing key fails the test naming the run, the key and what was there."""
    node: Any = run.get("target_stats")
    where = "target_stats"
    for key in path:
        if not isinstance(node, dict) or key not in node:
            shown = sorted(node) if isinstance(node, dict) else node
            pytest.fail(f"run {run.get('id')} ({run.get('variant')}): {where} has no {key!r} "
                        f"(it holds {shown!r}): the lab did not read the target's stats path, "
                        f"or the target does not report {key!r}")
        node = node[key]
        where += f"[{key!r}]"
    return node


@dataclass(frozen=True)
class CpuUse:
    """CPU over a run's measured window, in cores (1.0 = one core busy all the time)."""

    target_cores: float
    """The target's whole process tree."""
    idle_cores: float
    """The whole machine's idle CPU: what nothing (the target, the generator, other
    programs) used."""
    window_s: float
    """Seconds between the two readings compared."""


def _span(rows: list[ResourceRow], start_s: float) -> tuple[ResourceRow, ResourceRow]:
    inside = [r for r in rows if r.t_s >= start_s - 1e-6]
    assert len(inside) >= 2, f"fewer than two readings from t = {start_s} s: {[r.t_s for r in rows]}"
    return inside[0], inside[-1]


def cpu_use(db: Path, run_id: int, warmup_s: float) -> CpuUse:
    """The target's CPU and the machine's idle CPU from the first resource reading at or
    after ``warmup_s`` to the run's last reading.

    The target's from its tree's stored cumulative CPU seconds; the idle CPU from each
    system reading's per-core busy percent (psutil counts time stolen by a hypervisor as
    busy), weighted by the time each reading covers.
    """
    with Store(db, readonly=True) as store:
        target = store.resources(run_id, "target")
        system = store.resources(run_id, "system")
    t0, t1 = _span(target, warmup_s)
    s0, _ = _span(system, warmup_s)
    idle_core_s = covered_s = 0.0
    previous = s0
    for row in system:
        if row.t_s <= s0.t_s + 1e-6:
            continue
        per_core = row.detail["per_core_percent"]
        covers = row.t_s - previous.t_s
        idle_core_s += sum(100.0 - pct for pct in per_core) / 100.0 * covers
        covered_s += covers
        previous = row
    return CpuUse(target_cores=(t1.cpu_seconds - t0.cpu_seconds) / (t1.t_s - t0.t_s),
                  idle_cores=idle_core_s / covered_s, window_s=covered_s)
