"""What ``lab export`` writes: the per-second series, resource samples and target gauges of
stored runs, and for runs behind a balancer each replica's traffic per interval, the
replica count per interval and the autoscaler's decisions, as CSV (one table) or JSON
(all of them per run). Columns and units: :mod:`lab.report.formats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.store import Store

WHAT = ("series", "resources", "targets", "replica_intervals", "replica_counts", "autoscale_events")
"""The tables ``--what`` can pick for CSV (the last three: runs behind a balancer)."""


def render_export(store: Store, run_ids: Sequence[int], fmt: str, what: str = "series") -> str:
    """The export text of some runs.

    Args:
        store: an open results database.
        run_ids: the runs, in output order (repeats dropped).
        fmt: ``csv`` or ``json``.
        what: for CSV, the table: one of ``WHAT``.

    Raises:
        UnknownRunError: ``no run with id N``.
    """
    from lab.analysis.replicas import replica_intervals
    from lab.report import formats
    from lab.session import fleets_of

    runs = store.get_runs(list(dict.fromkeys(run_ids)))
    if fmt == "json":
        fleets = fleets_of(store, runs)
        doc = formats.export_json(
            runs,
            intervals={r.id: store.intervals(r.id) for r in runs},
            resources={r.id: store.resources(r.id) for r in runs},
            samples={r.id: store.target_samples(r.id) for r in runs},
            fleets=fleets,
            replica_slices={run_id: replica_intervals(store.replica_intervals(run_id)) for run_id in fleets},
        )
        return formats.export_json_text(doc)
    if what == "replica_intervals":
        return formats.replica_intervals_csv(
            runs, {r.id: replica_intervals(store.replica_intervals(r.id)) for r in runs})
    if what == "replica_counts":
        return formats.replica_counts_csv(runs, {r.id: store.replica_counts(r.id) for r in runs})
    if what == "autoscale_events":
        return formats.autoscale_events_csv(runs, {r.id: store.autoscale_events(r.id) for r in runs})
    if what == "resources":
        return formats.resources_csv(runs, {r.id: store.resources(r.id) for r in runs})
    if what == "targets":
        return formats.targets_csv(runs, {r.id: store.target_samples(r.id) for r in runs})
    return formats.series_csv(runs, {r.id: store.intervals(r.id) for r in runs})
