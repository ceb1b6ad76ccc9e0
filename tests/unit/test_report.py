"""Terminal and JSON reports of stored runs."""

from __future__ import annotations

import json

import pytest

from lab.figures import Latency, Summary
from lab.report import (
    comparison_table,
    dumps,
    experiment_json,
    format_delta,
    render,
    run_details,
    run_json,
    runs_json,
    runs_table,
    series_json,
    series_table,
)
from lab.store import ErrorRow, IntervalRow, RunRecord


def _latency(p50: float) -> Latency:
    return Latency(p50=p50, p90=p50 * 1.5, p95=p50 * 2, p99=p50 * 3, max=p50 * 5, mean=p50 * 1.2, count=900)


def _summary(
    rps: float,
    p50: float,
    errors: int = 0,
    cache: float | None = None,
    cpu: float | None = 0.5,
    rss: int | None = 80 * 2**20,
) -> Summary:
    return Summary(
        requests=1000,
        ok=1000 - errors,
        errors=errors,
        dropped=0,
        interrupted=0,
        bytes=1_000_000,
        window_s=10.0,
        throughput_rps=rps,
        attempts_rps=rps + errors / 10,
        latency_ms=_latency(p50),
        latency_all_ms=_latency(p50),
        service_ms=_latency(p50 * 0.9),
        error_rate=errors / 1000,
        errors_by_class={"http_5xx": errors} if errors else {},
        target_cpu_s_per_1k=cpu,
        target_peak_rss_bytes=rss,
        cache_hit_ratio=cache,
    )


def _run(
    run_id: int,
    variant: str,
    summary: Summary | None,
    status: str = "completed",
    reason: str | None = None,
    experiment: str = "caching",
) -> RunRecord:
    return RunRecord(
        id=run_id,
        experiment=experiment,
        variant=variant,
        status=status,
        reason=reason,
        started_at="2026-11-29T19:03:04.123Z",
        ended_at="2026-11-29T19:03:16.623Z",
        duration_s=12.5,
        config={"variant": variant},
        lab_version="0.1.0",
        host={"cores": 8, "memory_bytes": 16 * 2**30, "python": "3.11.9", "platform": "Linux"},
        target_url="http://127.0.0.1:41234",
        summary=summary,
        target_stats={"cache_hits": 83, "cache_misses": 17} if summary and summary.cache_hit_ratio else {},
        title="Does a cache help?",
    )


@pytest.fixture
def runs() -> list[RunRecord]:
    return [
        _run(1, "no-cache", _summary(157.7, 18.6)),
        _run(2, "lru", _summary(812.4, 4.1, errors=12, cache=0.83, cpu=0.4)),
        _run(3, "ttl", _summary(640.0, 5.3, cache=0.8, cpu=None, rss=None)),
        _run(4, "broken", None, status="failed", reason="target exited with code 1"),
    ]


def test_comparison_table_shows_variants_figures_and_deltas(runs: list[RunRecord]) -> None:
    text = render(comparison_table(runs), width=80)
    for variant in ("no-cache", "lru", "ttl", "broken"):
        assert variant in text
    assert "caching" in text  # title
    assert "157.7" in text and "812.4" in text
    assert "+415%" in text  # throughput 157.7 -> 812.4
    assert "−78%" in text  # p50 18.6 -> 4.1
    assert "+1.2pp" in text  # error percent 0 -> 1.2
    assert "cache" in text and "83.0" in text
    assert "failed" in text and "–" in text
    assert "vs run 1 (no-cache)" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    # every figure column survives at 80 columns (nothing cropped)
    for header in ("req/s", "p50", "p95", "p99", "max", "err", "drop", "CPU", "RSS", "cache"):
        assert header in text, header


def test_comparison_table_baseline_row_has_no_delta(runs: list[RunRecord]) -> None:
    text = render(comparison_table(runs[:1]), width=120)
    assert "%" not in text.split("no-cache", 1)[1].replace("err", "").replace("cache", "")
    text = render(comparison_table(runs[:3], baseline=1), width=120)
    assert "vs run 2 (lru)" in text
    assert "−81%" in text  # throughput of no-cache against lru


def test_comparison_table_without_cache_column() -> None:
    runs = [_run(1, "one", _summary(100.0, 2.0)), _run(2, "two", _summary(200.0, 1.0))]
    text = render(comparison_table(runs), width=100)
    assert "cache" not in text
    assert "+100%" in text and "−50%" in text


def test_comparison_table_rejects_a_baseline_outside_the_runs(runs: list[RunRecord]) -> None:
    with pytest.raises(IndexError):
        comparison_table(runs, baseline=9)
    assert "no runs" in render(comparison_table([]))


@pytest.mark.parametrize(
    ("value", "base", "kind", "text"),
    [
        (812.4, 157.7, "relative", "+415%"),
        (4.1, 18.6, "relative", "−78%"),
        (101.0, 100.0, "relative", "+1.0%"),
        (100.0, 100.0, "relative", "±0%"),
        (1.2, 0.0, "points", "+1.2pp"),
        (12, 0, "absolute", "+12"),
    ],
)
def test_format_delta(value: float, base: float, kind: str, text: str) -> None:
    result = format_delta(value, base, kind)  # type: ignore[arg-type]
    assert result is not None and result[0] == text


def test_format_delta_of_a_zero_base_is_none() -> None:
    assert format_delta(5.0, 0.0, "relative") is None


def test_runs_table(runs: list[RunRecord]) -> None:
    text = render(runs_table(runs), width=80)
    assert "2026-11-29 19:03" in text
    assert "812.4" in text and "12.5" in text
    assert all(r.variant in text for r in runs)
    assert max(len(line) for line in text.splitlines()) <= 80


def _intervals(run_id: int, rate: float = 0.0) -> list[IntervalRow]:
    return [
        IntervalRow(
            run_id=run_id,
            t_s=float(t),
            duration_s=1.0,
            requests=100,
            ok=99,
            errors=1,
            bytes=9900,
            dropped=0,
            interrupted=0,
            active_vus=4,
            target_rate=rate,
            stage=0,
            errors_by_class={"http_5xx": 1},
            histogram=b"",
            histogram_all=b"",
            histogram_service=b"",
            p50_ms=4.1,
            p90_ms=5.0,
            p95_ms=6.0,
            p99_ms=9.0,
            max_ms=12.0 if t else None,
        )
        for t in range(3)
    ]


def test_series_table(runs: list[RunRecord]) -> None:
    text = render(series_table(runs[1], _intervals(2)), width=80)
    assert "run 2" in text and "VUs" in text and "99.0" in text and "–" in text
    text = render(series_table(runs[1], _intervals(2, rate=50.0)), width=80)
    assert "rate" in text and "50.0" in text


def test_run_details(runs: list[RunRecord]) -> None:
    errors = [ErrorRow(run_id=2, error_class="http_5xx", status=503, message="Service Unavailable", count=12)]
    text = render(run_details(runs[1], errors), width=100)
    for expected in ("lru", "completed", "812.4", "service time", "all attempts", "503", "cache hit"):
        assert expected in text, expected
    assert "Service Unavailable" in text
    text = render(run_details(runs[3]), width=80)
    assert "target exited with code 1" in text and "nothing measured" in text


def test_run_json_and_runs_json(runs: list[RunRecord]) -> None:
    doc = run_json(runs[1])
    assert doc["id"] == 2 and doc["variant"] == "lru" and doc["measured"] is True
    assert doc["summary"]["latency_ms"]["p50"] == 4.1
    assert run_json(runs[3])["summary"] is None
    assert run_json(runs[3], zero_summary=True)["summary"]["requests"] == 0
    listed = runs_json(runs)
    assert [r["id"] for r in listed["runs"]] == [1, 2, 3, 4]
    json.loads(dumps(listed))


def test_series_json(runs: list[RunRecord]) -> None:
    doc = series_json(runs[1], _intervals(2))
    assert doc["run"]["id"] == 2
    assert [iv["t_s"] for iv in doc["intervals"]] == [0.0, 1.0, 2.0]
    assert doc["intervals"][0]["ok_rps"] == 99.0 and doc["intervals"][0]["max_ms"] is None
    assert "histogram" not in doc["intervals"][0]
    json.loads(dumps(doc))


def test_experiment_json_shape(runs: list[RunRecord]) -> None:
    doc = experiment_json("caching", runs)
    assert doc["experiment"] == "caching"
    failed = doc["runs"][3]
    assert failed["status"] == "failed" and failed["measured"] is False
    assert failed["summary"]["requests"] == 0
    assert failed["summary"]["latency_ms"] == {
        **dict.fromkeys(("p50", "p90", "p95", "p99", "max", "mean"), 0.0), "count": 0}
