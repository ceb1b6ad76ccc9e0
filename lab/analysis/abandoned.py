"""The figures of a run whose lab process was killed mid-run (SIGKILL, a power cut): made
from what it stored, as for any run that stopped early.
"""

from __future__ import annotations

from lab.analysis.offered import offered_load
from lab.analysis.summary import MIN_MEASURED_S, summarise, too_short_note
from lab.figures import Summary
from lab.store import RunConfig, Store


def summarise_abandoned(store: Store, run_id: int, config: RunConfig) -> tuple[str, Summary | None]:
    """The summary of an abandoned run over what it stored after the warm-up, up to its last
    stored interval (none when that is under ``MIN_MEASURED_S``), and the phrase its
    reason ends with.

    Args:
        store: the results database holding the run.
        run_id: the run.
        config: the run's stored configuration (its ``load`` gives warm-up and schedule).

    Returns:
        ``("figures from what it stored", summary)``, or why there are none (e.g. "too
        short to summarise: …", "nothing measured") and None.
    """
    load = config.load
    warmup = load.warmup_s
    intervals = store.interval_counts(run_id)
    user_levels = [(e.t_s, e.level) for e in store.run_events(run_id) if e.reason == "user"]
    summary = summarise(intervals, store.cpu_readings(run_id), warmup,
                        min_measured_s=MIN_MEASURED_S,
                        offered=offered_load(intervals, load, warmup, user_levels))
    what = ("figures from what it stored" if summary is not None
            else too_short_note(intervals, warmup) or "nothing measured")
    return what, summary
