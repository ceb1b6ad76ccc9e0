"""Rows of ``results.db`` ↔ the records callers get: JSON columns, the flattened
``summaries`` row of a ``Summary``, a ``runs`` row as a ``RunRecord``.
"""

from __future__ import annotations

import json
from typing import Any

from lab.figures import Latency, Summary
from lab.store.records import RunRecord

_LATENCY_FIELDS = ("p50", "p90", "p95", "p99", "max", "mean")
_LATENCY_PREFIXES = {"latency_ms": "", "latency_all_ms": "all_", "service_ms": "service_"}
"""Summary latency attribute → column prefix in ``summaries`` (``p95_ms``, ``all_p95_ms``…)."""
_LATENCY_COUNTS = {
    "latency_ms": "latency_count",
    "latency_all_ms": "all_count",
    "service_ms": "service_count",
}
"""Summary latency attribute → ``summaries`` column of its histogram's count."""





def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def summary_row(run_id: int, summary: Summary, target_stats: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "requests": summary.requests,
        "ok": summary.ok,
        "errors": summary.errors,
        "dropped": summary.dropped,
        "interrupted": summary.interrupted,
        "bytes": summary.bytes,
        "window_s": summary.window_s,
        "throughput_rps": summary.throughput_rps,
        "attempts_rps": summary.attempts_rps,
    }
    for attr, prefix in _LATENCY_PREFIXES.items():
        latency: Latency = getattr(summary, attr)
        for name in _LATENCY_FIELDS:
            row[f"{prefix}{name}_ms"] = getattr(latency, name)
        row[_LATENCY_COUNTS[attr]] = latency.count
    row |= {
        "error_rate": summary.error_rate,
        "errors_by_class": dumps(summary.errors_by_class),
        "target_cpu_s_per_1k": summary.target_cpu_s_per_1k,
        "target_peak_rss_bytes": summary.target_peak_rss_bytes,
        "generator_cpu_s_per_1k": summary.generator_cpu_s_per_1k,
        "generator_peak_cpu_percent": summary.generator_peak_cpu_percent,
        "cache_hit_ratio": summary.cache_hit_ratio,
        "target_stats": dumps(target_stats or {}),
        "generator_bound": int(summary.generator_bound),
        "generator_bound_reason": summary.generator_bound_reason,
        "loop_lag_p99_ms": summary.loop_lag_p99_ms,
        "offered_rps": summary.offered_rps,
        "achieved_rps": summary.achieved_rps,
        "load_not_achieved": int(summary.load_not_achieved),
        "load_not_achieved_reason": summary.load_not_achieved_reason,
    }
    return row


def summary_from_row(row: dict[str, Any]) -> Summary:
    latencies = {
        attr: Latency(
            **{name: float(row[f"{prefix}{name}_ms"] or 0.0) for name in _LATENCY_FIELDS},
            count=int(row[_LATENCY_COUNTS[attr]] or 0),
        )
        for attr, prefix in _LATENCY_PREFIXES.items()
    }
    return Summary(
        requests=row["requests"],
        ok=row["ok"],
        errors=row["errors"],
        dropped=row["dropped"],
        interrupted=row["interrupted"],
        bytes=row["bytes"],
        window_s=row["window_s"],
        throughput_rps=row["throughput_rps"],
        attempts_rps=row["attempts_rps"],
        latency_ms=latencies["latency_ms"],
        latency_all_ms=latencies["latency_all_ms"],
        service_ms=latencies["service_ms"],
        error_rate=row["error_rate"],
        errors_by_class=loads(row["errors_by_class"]),
        target_cpu_s_per_1k=row["target_cpu_s_per_1k"],
        target_peak_rss_bytes=row["target_peak_rss_bytes"],
        generator_cpu_s_per_1k=row["generator_cpu_s_per_1k"],
        generator_peak_cpu_percent=row["generator_peak_cpu_percent"],
        cache_hit_ratio=row["cache_hit_ratio"],
        generator_bound=bool(row.get("generator_bound") or 0),
        generator_bound_reason=row.get("generator_bound_reason"),
        loop_lag_p99_ms=row.get("loop_lag_p99_ms"),
        offered_rps=row.get("offered_rps"),
        achieved_rps=row.get("achieved_rps"),
        load_not_achieved=bool(row.get("load_not_achieved") or 0),
        load_not_achieved_reason=row.get("load_not_achieved_reason"),
    )


def run_record(row: dict[str, Any], summary_row: dict[str, Any] | None) -> RunRecord:
    started = float(row["started_at_unix"])
    ended = row["ended_at_unix"]
    return RunRecord(
        id=row["id"],
        experiment=row["experiment"],
        variant=row["variant"],
        status=row["status"],
        reason=row["reason"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=(float(ended) - started) if ended is not None else None,
        config=loads(row["config"]),
        lab_version=row["lab_version"] or "",
        host={
            "cores": row["host_cores"],
            "memory_bytes": row["host_memory_bytes"],
            "python": row["host_python"],
            "platform": row["host_platform"],
        },
        target_url=row["target_url"],
        summary=summary_from_row(summary_row) if summary_row else None,
        target_stats=loads(summary_row["target_stats"]) if summary_row else {},
        title=row["title"] or "",
        sweep_id=row.get("sweep_id"),
        sweep_level=row.get("sweep_level"),
        run_key=row["run_key"] or "",
        started_at_unix=started,
        ended_at_unix=float(ended) if ended is not None else None,
    )
