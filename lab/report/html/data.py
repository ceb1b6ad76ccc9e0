"""What the HTML report shows: the runs, their stages, sweeps and replicas as
``lab.session``'s ``RunReport`` of stored runs gives every renderer, and their series,
resources and errors read through the ``Store`` API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.analysis.stages import StageFigures
    from lab.analysis.sweep import SweepAnalysis
    from lab.session import FleetReport
    from lab.store import ErrorRow, IntervalRow, ResourceRow, RunRecord, Store




@dataclass(frozen=True)
class SweepEntry:
    """One stored sweep (a variant run at each level) and its analysis."""

    id: int
    """``sweeps.id``."""
    experiment: str
    """The experiment the sweep belongs to."""
    variant: str
    """The swept variant."""
    analysis: SweepAnalysis
    """Per-level figures and fits (``lab.analysis.sweep.analyse_stored``)."""


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, read from a results database."""

    runs: list[RunRecord]
    """The runs asked for, in the order asked."""
    intervals: dict[int, list[IntervalRow]] = field(default_factory=dict)
    """Run id → its intervals (about one per second), time order."""
    target_resources: dict[int, list[ResourceRow]] = field(default_factory=dict)
    """Run id → its ``target`` resource readings, time order."""
    errors: dict[int, list[ErrorRow]] = field(default_factory=dict)
    """Run id → its stored error samples."""
    stages: dict[int, list[StageFigures]] = field(default_factory=dict)
    """Run id → per-stage figures, for runs whose load has more than one stage."""
    sweeps: list[SweepEntry] = field(default_factory=list)
    """The sweeps any of the runs is a level of, in first-seen order."""
    fleets: dict[int, FleetReport] = field(default_factory=dict)
    """Run id → its replicas' figures, the autoscaler's decisions and the replica counts per
    interval, for runs behind a balancer only."""
    source: str = ""
    """Where the data came from (the database path), shown in the header."""
    generated_at: float = 0.0
    """When the report was made, Unix seconds (0: now, when rendered)."""


def gather(store: Store, run_ids: Sequence[int], source: str = "") -> ReportData:
    """Read the runs, their series and their sweeps from the store (no writes).

    Args:
        store: the results database (read-only is enough).
        run_ids: the runs, in display order; the first is the baseline of the deltas.
        source: how to name the database in the header (e.g. the ``--db`` path).

    Raises:
        UnknownRunError: ``no run with id N`` for the first unknown id.
    """
    from lab.session import stored_report

    # The runs, their stages and their sweeps as every other renderer gets them.
    report = stored_report(store, run_ids)
    runs = list(report.runs)
    intervals: dict[int, list[IntervalRow]] = {}
    resources: dict[int, list[ResourceRow]] = {}
    errors: dict[int, list[ErrorRow]] = {}
    for run in runs:
        if run.id in intervals:
            continue
        intervals[run.id] = store.intervals(run.id)
        resources[run.id] = store.resources(run.id, role="target")
        errors[run.id] = store.errors(run.id)
    stages: dict[int, list[StageFigures]] = dict(report.stages)
    sweeps = [SweepEntry(sweep_id, store.get_sweep(sweep_id).experiment, variant, analysis)
              for sweep_id, variant, analysis in report.sweeps]
    return ReportData(runs=runs, intervals=intervals, target_resources=resources, errors=errors,
                      stages=stages, sweeps=sweeps, fleets=dict(report.fleets), source=source,
                      generated_at=time.time())


