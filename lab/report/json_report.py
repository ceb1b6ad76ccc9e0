"""JSON reports of stored runs.

``experiment_json`` is the ``lab run --format json`` contract (checked by
``../shared/tools/check_contract.py --json``)::

    {"experiment": "str", "runs": [{"id": 1, "variant": "str", "status": "str",
      "summary": {"requests": 0, "ok": 0, "errors": 0, "dropped": 0, "throughput_rps": 0.0,
                  "attempts_rps": 0.0, "latency_ms": {"p50": 0.0, ...},
                  "latency_all_ms": {...}, "error_rate": 0.0,
                  "target_cpu_s_per_1k": 0.0, "target_peak_rss_bytes": 0}}]}

Every run in it carries a summary object, even a run that failed before measuring
anything: its summary then has zero counts, zero rates and zero latencies, and null
resource figures, so the types always check. Such a run says ``"measured": false``
(``true`` otherwise); consumers that must tell "zero" from "not measured" use that flag.

Units: latencies in ms, rates in req/s, durations in s, memory in bytes, CPU in
CPU-seconds per 1,000 requests. Times are ISO-8601 UTC text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lab.figures import Latency, Summary

if TYPE_CHECKING:
    from lab.analysis.stages import StageFigures
    from lab.store import IntervalRow, RunRecord

_ZERO_LATENCY = Latency(p50=0.0, p90=0.0, p95=0.0, p99=0.0, max=0.0, mean=0.0, count=0)
EMPTY_SUMMARY = Summary(
    requests=0,
    ok=0,
    errors=0,
    dropped=0,
    interrupted=0,
    bytes=0,
    window_s=0.0,
    throughput_rps=0.0,
    attempts_rps=0.0,
    latency_ms=_ZERO_LATENCY,
    latency_all_ms=_ZERO_LATENCY,
    service_ms=_ZERO_LATENCY,
    error_rate=0.0,
)
"""The summary reported for a run that measured nothing: zeros, and None resource figures."""


def client_of(run: RunRecord) -> str | None:
    """The client engine a run used (``httpx`` or ``fast``), from its stored config."""
    return run.settings.load.client


def generator_workers_of(run: RunRecord) -> int | None:
    """How many generator worker processes a run used, from its stored config."""
    return run.settings.load.workers


def client_label(client: str | None, http2: bool = False, follow_redirects: bool = False) -> str:
    """How outputs name the client engine: ``fast client``, ``httpx client (HTTP/2,
    follows redirects)``."""
    extras = [text for on, text in ((http2, "HTTP/2"), (follow_redirects, "follows redirects")) if on]
    return f"{client or '?'} client" + (f" ({', '.join(extras)})" if extras else "")


def load_source_of(run: RunRecord) -> str:
    """What drove a run, as the notes under every table say it: ``fast client, 2 generator
    workers``, ``httpx client (HTTP/2), 1 generator worker``, ``fast client, 4 generator
    workers on 2 hosts (dask)``; with why fewer workers ran
    than were asked for, when that happened (``httpx client, 1 generator worker
    (connections = 1 is a total, not split over 2 workers)``)."""
    load = run.settings.load
    plural = "s" if load.workers != 1 else ""
    client = client_label(load.client, load.http2, load.follow_redirects)
    text = f"{client}, {load.workers or '?'} generator worker{plural}"
    gens = run.settings.generators
    if gens is not None and gens.source == "dask":
        hosts = len(gens.hosts)
        text += f" on {hosts} host{'s' if hosts != 1 else ''} (dask)"
    note = run.settings.generator_workers_note
    return f"{text} ({note})" if note else text


def run_json(run: RunRecord, zero_summary: bool = False) -> dict[str, Any]:
    """One run as a JSON-ready dict.

    Args:
        run: the run.
        zero_summary: when the run has no summary, emit ``EMPTY_SUMMARY`` (zeros) instead
            of null, as the experiment contract requires.

    Returns:
        ``{"id", "experiment", "variant", "status", "reason", "started_at", "ended_at",
        "duration_s", "measured", "summary", "title", "target_url", "lab_version",
        "host", "target_stats", "config"}``; ``summary`` is ``Summary.as_contract()``, or
        null (zeros with ``zero_summary``) when the run measured nothing.
    """
    if run.summary is not None:
        summary: dict[str, Any] | None = run.summary.as_contract()
    elif zero_summary:
        summary = EMPTY_SUMMARY.as_contract()
    else:
        summary = None
    return {
        "id": run.id,
        "experiment": run.experiment,
        "variant": run.variant,
        "status": run.status,
        "reason": run.reason,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": None if run.duration_s is None else round(run.duration_s, 3),
        "measured": run.summary is not None,
        "client": client_of(run),
        "generator_workers": generator_workers_of(run),
        "summary": summary,
        "title": run.title,
        "target_url": run.target_url,
        "lab_version": run.lab_version,
        "host": dict(run.host),
        "target_stats": dict(run.target_stats),
        "config": run.config,
    }


def experiment_json(experiment: str, runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The ``lab run --format json`` contract: an experiment's runs, each with a summary
    object (zeros when the run measured nothing; see the module docstring).

    Args:
        experiment: the experiment's name.
        runs: its runs, in report order.
    """
    return {"experiment": experiment, "runs": [run_json(run, zero_summary=True) for run in runs]}


def runs_json(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """A list of runs (``lab runs --format json``): ``{"runs": [run_json...]}``; a run
    that measured nothing has a null summary."""
    return {"runs": [run_json(run) for run in runs]}


def series_json(run: RunRecord, intervals: Sequence[IntervalRow],
                samples: Sequence[tuple[float, str, float]] = ()) -> dict[str, Any]:
    """A run with its per-interval series (``lab show --format json``).

    Returns:
        ``{"run": run_json(run), "intervals": [...], "target_samples": [...]}``, each
        interval with ``t_s``, ``duration_s``, counts, ``ok_rps`` (req/s),
        ``active_vus``, ``target_rate`` (req/s), ``stage``, ``errors_by_class``,
        ``in_flight_mean`` and ``p50_ms`` … ``max_ms`` (null when the interval had no
        successful request); each target sample ``{"t_s", "name", "value"}``.
        Histograms are left out.
    """
    return {
        "target_samples": [{"t_s": t, "name": n, "value": v} for t, n, v in samples],
        "run": run_json(run),
        "intervals": [
            {
                "t_s": iv.t_s,
                "duration_s": iv.duration_s,
                "requests": iv.requests,
                "ok": iv.ok,
                "errors": iv.errors,
                "bytes": iv.bytes,
                "dropped": iv.dropped,
                "interrupted": iv.interrupted,
                "ok_rps": round(iv.ok / iv.duration_s, 3) if iv.duration_s > 0 else 0.0,
                "active_vus": iv.active_vus,
                "target_rate": iv.target_rate,
                "stage": iv.stage,
                "errors_by_class": dict(iv.errors_by_class),
                "p50_ms": iv.p50_ms,
                "p90_ms": iv.p90_ms,
                "p95_ms": iv.p95_ms,
                "p99_ms": iv.p99_ms,
                "max_ms": iv.max_ms,
                "in_flight_mean": iv.in_flight_mean,
            }
            for iv in intervals
        ],
    }


def dumps(document: dict[str, Any]) -> str:
    """Serialise a report as indented JSON text (UTF-8 characters kept as they are)."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def stages_json(stages: Sequence[StageFigures]) -> list[dict[str, Any]]:
    """Per-stage figures (``lab.analysis.stages``) as JSON-ready dicts: ``stage``,
    ``start_s``, ``end_s``, ``offered`` (req/s, or VUs in the closed model),
    ``throughput_rps``, ``completed_rps``, ``error_rate``, ``dropped``, ``p50_ms``,
    ``p99_ms``, ``mean_ms``, ``in_flight_measured``, ``in_flight_little`` (X·W),
    ``little_error`` (relative) and ``little_ok``; ``stage_start_s``/``stage_end_s`` (the
    stage's own span; ``start_s``/``end_s`` are the time the figures cover),
    ``intervals``, ``outside_s`` (seconds of them in neighbouring stages or after the
    schedule's end), ``drain_s`` (of those, or of the drain row's own, the seconds after
    the schedule's end), ``drain`` (true for the last row when intervals lie mostly after
    the schedule's end: requests answered then; its ``stage`` is the number of stages),
    ``requests`` (completed attempts in the row's intervals: the rows' add up to the run's)
    and ``note`` (why a stage has no figures, else null)."""
    def r(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    return [{
        "stage": st.stage, "start_s": st.start_s, "end_s": st.end_s,
        "offered": r(st.offered), "throughput_rps": r(st.throughput_rps),
        "completed_rps": r(st.completed_rps), "error_rate": r(st.error_rate, 5),
        "dropped": st.dropped, "p50_ms": r(st.p50_ms), "p99_ms": r(st.p99_ms),
        "mean_ms": r(st.mean_ms), "in_flight_measured": r(st.in_flight_measured),
        "in_flight_little": r(st.in_flight_little), "in_flight_target": r(st.in_flight_target),
        "little_error": r(st.little_error, 4),
        "little_ok": st.little_ok,
        "stage_start_s": r(st.stage_start_s), "stage_end_s": r(st.stage_end_s),
        "intervals": st.intervals, "outside_s": r(st.outside_s), "drain_s": r(st.drain_s),
        "drain": st.drain, "note": st.note, "requests": st.requests,
    } for st in stages]
