"""Sample target for the algorithmic-complexity experiment: one endpoint, two algorithms.

``GET /rankings/{id}/distance`` compares ranking ``id`` (a shuffled list of ``SIZE``
items) with the reference order and returns the Kendall tau distance: the number of
item pairs the two rankings put in a different order, i.e. the number of inversions in
the list. The answer is the same whichever algorithm computes it (``ALGORITHM``):

- ``quadratic``: compare every pair, ``n(n-1)/2`` comparisons: O(n²).
- ``nlogn``: merge sort that counts, while merging, how many items of the right half
  jump ahead of the items left in the left half: O(n log n).

Both are plain Python with the same per-step costs, so the difference is the number of
steps: at n = 1,000 about 500,000 comparisons against about 8,700; 4× the items cost
the quadratic version 16× the steps and the n log n version about 4.8×.

Environment, read at startup:

- ``ALGORITHM``: ``quadratic`` (default) or ``nlogn``.
- ``SIZE`` (default 1000): items per ranking, 2..100000.
- ``RANKINGS`` (default 64): how many different rankings exist (ids 1..RANKINGS),
  generated deterministically at startup.

``/stats`` counters: ``requests`` and ``comparisons`` (element comparisons done for
them, counted with their request at once); the lab reports ``per_request.comparisons``.
Also served on ``LAB_STATS_PORT`` (``targets.statsport``).

Run: ``ALGORITHM=nlogn SIZE=4000 uvicorn targets.complexity:app --port 8000``
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from targets.statsport import Counters, serve_stats

ALGORITHMS = ("quadratic", "nlogn")


def inversions_quadratic(items: list[int]) -> tuple[int, int]:
    """(inversions, comparisons) by comparing every pair: n(n-1)/2 comparisons."""
    count = 0
    n = len(items)
    for i in range(n):
        first = items[i]
        for second in items[i + 1:]:
            if first > second:
                count += 1
    return count, n * (n - 1) // 2


def inversions_nlogn(items: list[int]) -> tuple[int, int]:
    """(inversions, comparisons) by a merge sort that counts as it merges."""
    comparisons = 0

    def sort(part: list[int]) -> tuple[list[int], int]:
        nonlocal comparisons
        if len(part) <= 1:
            return part, 0
        middle = len(part) // 2
        left, left_inv = sort(part[:middle])
        right, right_inv = sort(part[middle:])
        merged: list[int] = []
        inv = left_inv + right_inv
        i = j = 0
        nl, nr = len(left), len(right)
        while i < nl and j < nr:
            if left[i] <= right[j]:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
                inv += nl - i  # right[j] jumps ahead of every item still in left
        comparisons += i + j
        merged.extend(left[i:])
        merged.extend(right[j:])
        return merged, inv

    _, inversions = sort(items)
    return inversions, comparisons


IMPLEMENTATIONS: dict[str, Callable[[list[int]], tuple[int, int]]] = {
    "quadratic": inversions_quadratic,
    "nlogn": inversions_nlogn,
}


@dataclass
class ComplexityApp:
    algorithm: str
    size: int
    rankings: list[list[int]]
    counters: Counters = field(default_factory=lambda: Counters("requests", "comparisons"))
    work: Callable[[list[int]], tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.work = IMPLEMENTATIONS[self.algorithm]

    @classmethod
    def from_env(cls) -> ComplexityApp:
        algorithm = os.environ.get("ALGORITHM", "quadratic").strip().lower()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"ALGORITHM must be one of {', '.join(ALGORITHMS)} (got {algorithm!r})")

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = os.environ.get(name, "")
            try:
                value = int(raw) if raw.strip() else default
            except ValueError:
                raise ValueError(f"{name} must be an integer (got {raw!r})") from None
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high} (got {value})")
            return value

        size = integer("SIZE", 1000, 2, 100_000)
        count = integer("RANKINGS", 64, 1, 10_000)
        rng = random.Random(1234)
        rankings = []
        for _ in range(count):
            ranking = list(range(size))
            rng.shuffle(ranking)
            rankings.append(ranking)
        return cls(algorithm=algorithm, size=size, rankings=rankings)

    def stats(self) -> dict[str, object]:
        """The ``/stats`` figures (read from any thread)."""
        return {**self.counters.snapshot(), "info": {"algorithm": self.algorithm, "n": str(self.size)}}


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, ComplexityApp]]:
    try:
        state = ComplexityApp.from_env()
    except ValueError as exc:
        print(f"complexity: invalid configuration: {exc}", file=sys.stderr, flush=True)
        raise
    with serve_stats(state.stats):
        yield {"complexity": state}


# CPU work inline in an async handler, on purpose (see targets/catalog.py): one worker is
# one core, and requests queue for it in the order they come.
async def distance(request: Request) -> Response:
    """``GET /rankings/{id}/distance``: inversions of ranking ``id`` against 0..n-1."""
    state: ComplexityApp = request.state.complexity
    raw = request.path_params["ranking_id"]
    try:
        ranking_id = int(raw)
    except ValueError:
        ranking_id = 0
    if not 1 <= ranking_id <= len(state.rankings):
        return JSONResponse({"error": "no such ranking", "id": raw, "rankings": len(state.rankings)},
                            status_code=404)
    ranking = state.rankings[ranking_id - 1]
    inversions, comparisons = state.work(ranking)
    state.counters.add(requests=1, comparisons=comparisons)
    pairs = state.size * (state.size - 1) // 2
    return JSONResponse({"id": ranking_id, "size": state.size, "algorithm": state.algorithm,
                         "distance": inversions, "normalized": round(inversions / pairs, 6),
                         "comparisons": comparisons})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    state: ComplexityApp = request.state.complexity
    return JSONResponse(state.stats())


app = Starlette(
    routes=[
        Route("/rankings/{ranking_id}/distance", distance),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
