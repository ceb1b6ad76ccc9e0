"""The registry of figures (``lab.metrics``): one definition read by the tables, the
thresholds and the noise analysis, and figures written as people read them."""

from __future__ import annotations

import pytest

from lab.analysis.noise import FIGURES
from lab.analysis.thresholds import evaluate
from lab.metrics import COMPARISON_COLUMNS, MARKDOWN_COLUMNS, METRICS, by_threshold_name
from lab.report.formats import to_junit, to_markdown
from lab.report.table import comparison_table, render, thresholds_text
from lab.store import RunRecord
from lab.thresholds import parse_threshold
from tests.unit.test_formats import _latency, _run, _summary


def _fast_run() -> list[RunRecord]:
    return [_run(1, "fast", summary=_summary(throughput_rps=35_210.4, attempts_rps=35_210.4,
                                             target_peak_rss_bytes=123_456_789))]


def test_threshold_results_print_figures_as_people_read_them() -> None:
    thresholds = [parse_threshold(t) for t in ("throughput>40000", "rss<100MB", "p95<200ms",
                                               "error_rate<1%")]
    results = evaluate(thresholds, _fast_run())
    assert [r.describe() for r in results] == [
        "throughput>40000: 35,210 req/s",  # was 3.521e+04 req/s
        "rss<100MB: 123,456,789 B",  # was 1.235e+08 B
        "p95<200ms: 281 ms",
        "error_rate<1%: 0 %",
    ]
    text = render(thresholds_text(results))
    assert "35,210 req/s" in text and "e+0" not in text
    markdown = to_markdown("t", _fast_run(), results)
    assert "`throughput>40000`: 35,210 req/s" in markdown and "e+0" not in markdown
    junit = to_junit("t", _fast_run(), results)
    assert ("throughput was 35,210 req/s; the threshold requires throughput &gt; 40,000 req/s"
            in junit), junit
    assert "target_peak_rss_bytes &lt; 100,000,000 B" in junit
    assert "e+0" not in junit


def test_every_threshold_name_is_a_figure_of_the_registry() -> None:
    names = [n for m in METRICS for n in m.threshold_names]
    assert len(names) == len(set(names))  # no name means two figures
    for name in names:
        metric = by_threshold_name(name)
        assert metric is not None
        threshold = parse_threshold(f"{name} >= 0")
        assert threshold.metric == metric.threshold_name and threshold.figure is metric
        assert threshold.value(_summary()) == metric.get(_summary())


def test_tables_and_noise_read_the_same_figures() -> None:
    # The Markdown table is the terminal table's figures minus the wide ones.
    assert set(MARKDOWN_COLUMNS) <= set(COMPARISON_COLUMNS)
    assert [f.name for f in FIGURES] == ["throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate"]
    assert all(f in METRICS and f.per_interval is not None for f in FIGURES)
    table = render(comparison_table([_run(1, "a"), _run(2, "b", summary=_summary(error_rate=0.0123))]))
    for metric in COMPARISON_COLUMNS:
        assert metric.header.split()[0] in table, metric.header
    assert "1.23" in table  # the share shown as a percent, as the registry scales it


@pytest.mark.parametrize(("value", "shown"), [(35_210.4, "35,210"), (12.34, "12.34"), (0.0, "0"),
                                              (1234.6, "1,235"), (99_999.9, "100,000")])
def test_significant_figures_never_use_an_exponent(value: float, shown: str) -> None:
    from lab.metrics import fmt_significant

    assert fmt_significant(value) == shown


def test_a_noise_range_never_goes_below_zero() -> None:
    from lab.analysis.noise import spread
    from lab.store import IntervalRow

    # One run whose per-interval p99 swings wildly: ± 2 standard errors would reach below 0 ms.
    p99s = [0.2, 0.3, 9.0, 0.25, 0.2]
    run = _run(1, "spiky", summary=_summary(latency_ms=_latency(0.5, 0.8, 1.0, 1.48, 9.0, 0.6, 500),
                                            error_rate=0.9))
    intervals = {1: [IntervalRow(1, float(t), 1.0, 100, 10 if t % 2 else 100, 90 if t % 2 else 0, 0, 0, 0,
                                 1, 0.0, 0, {}, b"", b"", b"", p, p, p, p, p)
                     for t, p in enumerate(p99s)]}
    by_name = {f.name: f for f in FIGURES}
    p99 = spread(by_name["p99_ms"], [run], intervals)
    assert p99 is not None and p99.median == 1.48
    assert p99.low == 0.0 and p99.high > 1.48  # the low end is cut at 0, the high end kept
    errors = spread(by_name["error_rate"], [run], intervals)
    assert errors is not None and errors.high == 1.0 and 0 < errors.low < 0.9
    throughput = spread(by_name["throughput_rps"], [run], intervals)
    assert throughput is not None and throughput.low >= 0
