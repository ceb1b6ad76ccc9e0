"""algorithmic-complexity: the two inversion counters, the target, and the experiment end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from targets import complexity
from tests.conftest import REPO, run_lab
from tests.figures import target_stat
from tests.test_targets_apps import running


def _brute_force(items: list[int]) -> int:
    return sum(1 for i in range(len(items)) for j in range(i + 1, len(items)) if items[i] > items[j])


@pytest.mark.parametrize("items", [[], [7], [1, 2, 3], [3, 2, 1], [2, 2, 1, 1], [5, 1, 4, 2, 3, 3]])
def test_both_algorithms_count_inversions(items: list[int]) -> None:
    expected = _brute_force(items)
    assert complexity.inversions_quadratic(items)[0] == expected
    assert complexity.inversions_nlogn(items)[0] == expected


def test_both_agree_on_random_rankings_and_count_their_comparisons() -> None:
    rng = random.Random(7)
    for n in (10, 57, 300):
        items = list(range(n))
        rng.shuffle(items)
        slow, pairs = complexity.inversions_quadratic(list(items))
        fast, merges = complexity.inversions_nlogn(list(items))
        assert slow == fast == _brute_force(items)
        assert pairs == n * (n - 1) // 2
        # A merge sort compares at most n - 1 times per level, over ceil(log2 n) levels.
        assert n // 2 <= merges <= (n - 1) * (n - 1).bit_length()
    assert complexity.inversions_nlogn(items) == (fast, merges)  # leaves its input alone


@pytest.fixture
def complexity_env(monkeypatch: pytest.MonkeyPatch):
    def make(algorithm: str, size: int = 200, rankings: int = 5) -> ASGIApp:
        monkeypatch.setenv("ALGORITHM", algorithm)
        monkeypatch.setenv("SIZE", str(size))
        monkeypatch.setenv("RANKINGS", str(rankings))
        return complexity.app

    return make


async def test_the_endpoint_answers_the_same_with_either_algorithm(complexity_env) -> None:
    answers = {}
    for algorithm in complexity.ALGORITHMS:
        async with running(complexity_env(algorithm)) as client:
            assert (await client.get("/health")).status_code == 200
            bodies = []
            for ranking in (1, 2, 5):
                resp = await client.get(f"/rankings/{ranking}/distance")
                assert resp.status_code == 200, resp.text
                bodies.append(resp.json())
            stats = (await client.get("/stats")).json()
        assert stats["requests"] == 3
        assert stats["comparisons"] == sum(b["comparisons"] for b in bodies)
        assert stats["info"] == {"algorithm": algorithm, "n": "200"}
        answers[algorithm] = [(b["id"], b["size"], b["distance"], b["normalized"]) for b in bodies]
    assert answers["quadratic"] == answers["nlogn"]
    # A shuffled ranking disagrees with the reference on about half of its pairs.
    assert all(0.35 < normalized < 0.65 for *_, normalized in answers["nlogn"])


async def test_unknown_rankings_and_bad_settings(complexity_env) -> None:
    async with running(complexity_env("nlogn")) as client:
        for path in ("/rankings/0/distance", "/rankings/6/distance", "/rankings/x/distance"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/stats")).json()["requests"] == 0
    with pytest.raises(RuntimeError, match="ALGORITHM"):
        async with running(complexity_env("bogo")):
            pass
    with pytest.raises(RuntimeError, match="SIZE"):
        async with running(complexity_env("nlogn", size=1)):
            pass


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
