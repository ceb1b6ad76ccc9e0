"""algorithmic-complexity: the two inversion counters and the complexity target, in process."""

from __future__ import annotations

import random

import pytest
from starlette.types import ASGIApp

from targets import complexity
from tests.asgi import running


def _brute_force(items: list[int]) -> int:
    return sum(1 for i in range(len(items)) for j in range(i + 1, len(items)) if items[i] > items[j])


@pytest.fixture
def complexity_env(monkeypatch: pytest.MonkeyPatch):
    def make(algorithm: str, size: int = 200, rankings: int = 5) -> ASGIApp:
        monkeypatch.setenv("ALGORITHM", algorithm)
        monkeypatch.setenv("SIZE", str(size))
        monkeypatch.setenv("RANKINGS", str(rankings))
        return complexity.app

    return make


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
