"""What ``lab export`` writes: the per-second series, resource samples and target gauges of
stored runs, as CSV (one table) or JSON (all three per run). Columns and units:
:mod:`lab.report.formats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.store import Store

WHAT = ("series", "resources", "targets")
"""The tables ``--what`` can pick for CSV."""


def render_export(store: Store, run_ids: Sequence[int], fmt: str, what: str = "series") -> str:
    """The export text of some runs.

    Args:
        store: an open results database.
        run_ids: the runs, in output order (repeats dropped).
        fmt: ``csv`` or ``json``.
        what: for CSV, the table: ``series``, ``resources`` or ``targets``.

    Raises:
        UnknownRunError: ``no run with id N``.
    """
    from lab.report import formats

    runs = store.get_runs(list(dict.fromkeys(run_ids)))
    if fmt == "json":
        doc = formats.export_json(
            runs,
            intervals={r.id: store.intervals(r.id) for r in runs},
            resources={r.id: store.resources(r.id) for r in runs},
            samples={r.id: store.target_samples(r.id) for r in runs},
        )
        return formats.export_json_text(doc)
    if what == "resources":
        return formats.resources_csv(runs, {r.id: store.resources(r.id) for r in runs})
    if what == "targets":
        return formats.targets_csv(runs, {r.id: store.target_samples(r.id) for r in runs})
    return formats.series_csv(runs, {r.id: store.intervals(r.id) for r in runs})
