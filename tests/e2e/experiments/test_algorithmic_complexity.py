"""algorithmic-complexity end to end: the experiment through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_lab
from tests.figures import target_stat


def test_complexity_experiment_shows_quadratic_growth(db_path: Path) -> None:
    # A pure-CPU target needs no warm-up: 2 s per variant, all of it measured. Like this
    # (3 runs on 2 cores): quadratic 106–111 → 6–7 req/s, n log n 881–926 → 209–217 req/s.
    res = run_lab("run", "experiments/algorithmic-complexity.toml", "--duration", "2s", "--warmup", "0s",
                  "--format", "json", "--db", str(db_path), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    runs = {r["variant"]: r for r in doc["runs"]}
    assert list(runs) == ["quadratic-small", "quadratic-large", "nlogn-small", "nlogn-large"]
    assert all(r["status"] == "completed" and r["summary"]["error_rate"] == 0 for r in runs.values())
    rps = {name: r["summary"]["throughput_rps"] for name, r in runs.items()}
    cost = {name: r["summary"]["target_cpu_s_per_1k"] for name, r in runs.items()}
    per_req = {name: target_stat(r, "per_request", "comparisons") for name, r in runs.items()}
    # The work itself: exact for the pairwise version, ~n log2 n for merge sort.
    assert per_req["quadratic-small"] == pytest.approx(499_500)
    assert per_req["quadratic-large"] == pytest.approx(7_998_000)
    assert 8_000 < per_req["nlogn-small"] < 9_500
    assert 40_000 < per_req["nlogn-large"] < 46_000
    # Its cost: CPU-seconds per request, which a busy machine does not change the way it
    # changes throughput (the four runs follow one another while its other load comes and
    # goes). Measured on 2 cores (12 s runs): quadratic 97 → 5.9 req/s (16x slower at 4x
    # n), n log n 747 → 190 req/s (3.9x); CPU per request beside other suites' runs:
    # quadratic 9.5 → 173 ms (18x), n log n 1.2 → 4.9 ms (4.2x).
    quadratic_growth = cost["quadratic-large"] / cost["quadratic-small"]
    nlogn_growth = cost["nlogn-large"] / cost["nlogn-small"]
    assert quadratic_growth >= 8, cost
    assert 2 <= nlogn_growth <= 7, cost
    assert quadratic_growth >= 2 * nlogn_growth, cost
    assert cost["quadratic-small"] >= 3 * cost["nlogn-small"], cost  # measured 8x
    assert cost["quadratic-large"] >= 10 * cost["nlogn-large"], cost  # measured 35x
    # What a user sees follows: n log n answers more at either size.
    assert rps["nlogn-small"] > rps["quadratic-small"] and rps["nlogn-large"] > rps["quadratic-large"], rps
