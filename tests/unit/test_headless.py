"""Threshold expressions as scripts and CI write them: units, shares, comparisons."""

from __future__ import annotations

import pytest

from lab.thresholds import parse_threshold

"""Added to variant b in the module's shared run: twice the latency of a, a regression."""


@pytest.mark.parametrize(("text", "metric", "limit"), [
    ("p95<200ms", "p95", 200.0), ("p99<=0.5s", "p99", 500.0), ("error_rate<1%", "error_rate", 0.01),
    ("throughput>500", "throughput", 500.0), ("rss<512MiB", "target_peak_rss_bytes", 512 * 2**20),
    ("all_p95 < 250us", "all_p95", 0.25),
    # A bare number is milliseconds for a latency (never seconds).
    ("p95<200", "p95", 200.0), ("p99 <= 1.5", "p99", 1.5),
    # Memory: decimal KB/MB/GB, binary KiB/MiB/GiB, any case; a bare number is bytes.
    ("rss<512KB", "target_peak_rss_bytes", 512_000), ("rss<64KiB", "target_peak_rss_bytes", 65_536),
    ("rss<2MB", "target_peak_rss_bytes", 2_000_000), ("rss<1.5GB", "target_peak_rss_bytes", 1.5e9),
    ("rss<2GiB", "target_peak_rss_bytes", 2 * 2**30), ("rss<300mb", "target_peak_rss_bytes", 3e8),
    ("rss<4096", "target_peak_rss_bytes", 4096),
])
def test_threshold_expressions_parse_with_units(text: str, metric: str, limit: float) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.limit) == (metric, pytest.approx(limit))
