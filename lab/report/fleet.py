"""Replicas behind a balancer, rendered: a per-replica table, the autoscaler's decisions,
and the JSON of both (keys ``replicas``, ``fleet`` and ``autoscale_events`` of a run)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from lab.metrics import MISSING, fmt_cpu, fmt_int, fmt_mib, fmt_ms, fmt_percent, fmt_seconds

if TYPE_CHECKING:
    from lab.analysis.replicas import FleetFigures
    from lab.analysis.slo import SloFigures
    from lab.session import FleetReport
    from lab.store import AutoscaleEventRow, RunRecord


def _table(title: str, caption: str | None = None) -> Table:
    return Table(title=title, caption=caption, title_style="bold", box=box.SIMPLE_HEAD,
                 padding=(0, 0), show_edge=False)


def _t(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def unrouted_text(f: FleetFigures) -> str:
    """The requests that arrived while no replica was ready, and what they waited."""
    return (f"{f.unrouted:,} requests arrived with no replica ready (p50 {fmt_ms(f.unrouted_p50_ms)} ms, "
            f"max {fmt_ms(f.unrouted_max_ms)} ms)")


def replicas_table(run: RunRecord, fleet: FleetReport) -> Table:
    """One row per replica of a run: its share of the traffic, requests, errors, p50/p99
    (as the balancer measured the replica), CPU per 1,000 requests, peak RSS, when it
    started, became ready and ended (seconds after the load began) and how it ended."""
    f = fleet.figures
    caption_bits = [f"balancer: nginx {run.settings.balancer_method or '?'}",
                    f"replica-seconds {f.replica_seconds:,.1f}",
                    f"balancer CPU {fmt_cpu(f.balancer_cpu_s_per_1k)} s/1k req"]
    if fleet.session_lost:
        caption_bits.append(f"{fleet.session_lost:,} answers 401 (sessions lost)")
    if f.unrouted:
        caption_bits.append(unrouted_text(f))
    caption = " · ".join(caption_bits)
    for fault in fleet.faults:
        caption += f"\nfault at {fault.t_s:.1f} s: {fault.note}"
    table = _table(f"run {run.id} ({run.variant}) by replica", caption=caption)
    for name in ("replica", "share\n%", "requests", "errors", "p50\nms", "p99\nms",
                 "CPU s\n/1k req", "peak RSS\nMiB", "start\ns", "ready\ns", "end\ns"):
        table.add_column(name, justify="right")
    table.add_column("ended as", justify="left")
    for r in f.replicas:
        table.add_row(str(r.replica), fmt_percent(r.share, 1), fmt_int(r.requests), fmt_int(r.errors),
                      fmt_ms(r.p50_ms), fmt_ms(r.p99_ms), fmt_cpu(r.cpu_s_per_1k),
                      fmt_mib(r.peak_rss_bytes), _t(r.started_s), _t(r.ready_s), _t(r.ended_s),
                      r.state)
    return table


def decisions_table(run: RunRecord, decisions: Sequence[AutoscaleEventRow]) -> Table:
    """The autoscaler's decisions that changed something (or were held back by a rule),
    with a count of the ones that left the replicas as they were."""
    shown = [d for d in decisions if d.applied or d.recommended != d.current]
    quiet = len(decisions) - len(shown)
    table = _table(f"run {run.id} ({run.variant}) autoscaler",
                   caption=f"{len(decisions)} decisions, {sum(d.applied for d in decisions)} "
                           f"applied; {quiet} kept the count and are not shown"
                           + (f"\nHPA rule with {run.settings.autoscale_note}"
                              if run.settings.autoscale_note else ""))
    for name in ("t s", "replicas", "metric", "ratio", "recommended", "desired"):
        table.add_column(name, justify="right")
    table.add_column("reason", justify="left")
    for d in shown:
        table.add_row(fmt_seconds(d.t_s), str(d.current),
                      MISSING if d.metric_value is None else f"{d.metric_value:.3g}",
                      MISSING if d.ratio is None else f"{d.ratio:.2f}",
                      str(d.recommended), str(d.desired) + (" ✓" if d.applied else ""), d.reason)
    return table


def fleet_json(fleet: FleetReport) -> dict[str, Any]:
    """``{"replicas": [...], "fleet": {...}, "autoscale_events": [...]}`` of one run.

    Each replica: ``replica``, ``pid``, ``address``, ``state``, ``started_s``, ``ready_s``,
    ``ended_s`` (s after the load began), ``requests``, ``share`` (0..1), ``errors``,
    ``p50_ms``, ``p99_ms``, ``mean_ms``, ``cpu_s``, ``cpu_s_per_1k``, ``peak_rss_bytes``,
    ``alive_s``. ``fleet``: ``replica_seconds``, ``unrouted`` (requests that arrived with no
    replica ready) with ``unrouted_p50_ms`` and ``unrouted_max_ms``, ``balancer_cpu_s``,
    ``balancer_cpu_s_per_1k``, ``max_ready``, ``session_lost`` (answers 401 over the run),
    ``scale_events`` (decisions that changed the count), ``faults`` (``t_s``, ``action``,
    ``replica``, ``applied``, ``note`` of each that came due), ``replica_counts`` (``t_s``, ``desired``,
    ``ready``, ``starting``, ``draining`` per interval). Each decision: ``t_s``,
    ``current``, ``metric``, ``metric_value``, ``ratio``, ``recommended``, ``desired``,
    ``applied``, ``reason``, ``inputs``.
    """
    f = fleet.figures
    return {
        "replicas": [r.as_dict() for r in f.replicas],
        "fleet": {
            "replica_seconds": round(f.replica_seconds, 3),
            "unrouted": f.unrouted,
            "unrouted_p50_ms": f.unrouted_p50_ms,
            "unrouted_max_ms": f.unrouted_max_ms,
            "balancer_cpu_s": None if f.balancer_cpu_s is None else round(f.balancer_cpu_s, 4),
            "balancer_cpu_s_per_1k": (None if f.balancer_cpu_s_per_1k is None
                                      else round(f.balancer_cpu_s_per_1k, 4)),
            "max_ready": f.max_ready,
            "session_lost": fleet.session_lost,
            "scale_events": sum(1 for d in fleet.decisions if d.applied),
            "faults": [{"t_s": x.t_s, "action": x.action, "replica": x.replica, "applied": x.applied,
                        "note": x.note} for x in fleet.faults],
            "replica_counts": [{"t_s": c.t_s, "desired": c.desired, "ready": c.ready,
                                "starting": c.starting, "draining": c.draining}
                               for c in fleet.counts],
        },
        "autoscale_events": [
            {"t_s": d.t_s, "current": d.current, "metric": d.metric, "metric_value": d.metric_value,
             "ratio": d.ratio, "recommended": d.recommended, "desired": d.desired,
             "applied": d.applied, "reason": d.reason, "inputs": d.inputs}
            for d in fleet.decisions
        ],
    }


def slo_text(runs: Sequence[RunRecord], slo: Mapping[int, SloFigures]) -> Text:
    """One line per run judged against the experiment's latency objective: the seconds
    its p99 was above it, and the longest stretch (the time it took to recover)."""
    out = Text()
    for run in runs:
        f = slo.get(run.id)
        if f is None:
            continue
        if out:
            out.append("\n")
        out.append(f"run {run.id} ({run.variant}): ", style="bold")
        if f.seconds_above:
            out.append(f"p99 above {f.slo_p99_ms:g} ms for {f.seconds_above:.1f} of "
                       f"{f.seconds_measured:.1f} s; longest {f.longest_above_s:.1f} s "
                       f"({f.stretches} stretch{'es' if f.stretches != 1 else ''})", style="red")
        else:
            out.append(f"p99 within {f.slo_p99_ms:g} ms every second ({f.seconds_measured:.1f} s)",
                       style="green")
    return out
