"""What the HTML report shows, read from stored runs through the ``Store`` API: the runs,
their series, resources, errors and stages, and the sweeps they belong to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.analysis.stages import StageFigures
    from lab.analysis.sweep import SweepAnalysis
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
    from lab.analysis.stages import stage_figures
    from lab.analysis.sweep import analyse_stored

    runs = store.get_runs(list(run_ids))
    intervals: dict[int, list[IntervalRow]] = {}
    resources: dict[int, list[ResourceRow]] = {}
    errors: dict[int, list[ErrorRow]] = {}
    stages: dict[int, list[StageFigures]] = {}
    for run in runs:
        if run.id in intervals:
            continue
        intervals[run.id] = store.intervals(run.id)
        resources[run.id] = store.resources(run.id, role="target")
        errors[run.id] = store.errors(run.id)
        load = run.settings.load
        if len(load.stages) > 1:
            user_levels = [(e.t_s, e.level) for e in store.run_events(run.id) if e.reason == "user"]
            stages[run.id] = stage_figures(intervals[run.id], load, user_levels=user_levels)
    sweep_ids = store.sweep_ids_of([run.id for run in runs])
    sweeps = [SweepEntry(sweep_id, store.get_sweep(sweep_id).experiment, variant, analysis)
              for sweep_id, variant, analysis in analyse_stored(store, sweep_ids, save=False)]
    return ReportData(runs=runs, intervals=intervals, target_resources=resources, errors=errors,
                      stages=stages, sweeps=sweeps, source=source, generated_at=time.time())


