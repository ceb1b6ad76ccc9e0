"""How the closed model paces its requests, with real generator workers against a real
server that records when each request arrives: the ``max_rps`` cap spaces them evenly, and
think time never lets a VU send past the end of the run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lab.load.wire import Done, Start, WorkerConfig
from lab.pool import Exited, GeneratorPool
from lab.spec import LoadSpec
from tests.e2e.servers import serve_asgi


class _ArrivalServer:
    """An ASGI app that answers ``ok`` at once and notes the ``time.monotonic()`` of every
    request's arrival (the workers' clock too)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.base_url = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.arrivals.append(time.monotonic())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def arrivals() -> AsyncIterator[_ArrivalServer]:
    srv = _ArrivalServer()
    async with serve_asgi(srv) as url:
        srv.base_url = url
        yield srv


async def _run_closed(base_url: str, workers: int, **load: Any) -> float:
    """Run the closed model with ``workers`` generator processes; return its t0."""
    spec = LoadSpec.model_validate({"timeout": 2.0, "client": "fast",
                                    "requests": [{"path": "/"}], **load})
    pool = GeneratorPool(WorkerConfig(base_url=base_url, seed=1, interval_s=1.0,
                                      load=spec.model_dump(mode="json")), workers=workers)
    try:
        await pool.start()
        t0 = time.monotonic() + 0.2
        pool.broadcast(Start(t0=t0))
        ended: set[int] = set()
        while len(ended) < workers:
            m = await asyncio.wait_for(pool.messages.get(), 20)
            if isinstance(m.msg, Done | Exited):
                ended.add(m.index)
    finally:
        await pool.close()
    return t0


async def test_max_rps_spaces_requests_evenly_across_vus_and_workers(arrivals: _ArrivalServer) -> None:
    t0 = await _run_closed(arrivals.base_url, workers=2, vus=4, max_rps=50, duration=2.0)
    sent = [t - t0 for t in arrivals.arrivals]
    assert all(t >= -0.001 for t in sent), sent[:5]
    # Uncapped, 4 VUs send thousands per second. 50 req/s for 2 s has 100 slots before the
    # end, and no more may be sent. A worker stalled past the pacer's few ms of catch-up
    # shifts its later slots, and one stalled for a whole slot's margin (the last comes
    # 20 ms before the end) loses its last: fewer, never more.
    assert 98 <= len(sent) <= 100, len(sent)
    # Evenly spaced: each 100 ms window holds about 5. asyncio-throttle sent each second's
    # allowance at its start (14 to 26 in one window, then 0 for 0.8 s: 16 windows of 20
    # empty). A busy machine may stall a worker once or twice, which empties a window and
    # crowds the next: most windows still hold 2 to 10.
    windows = [0] * 20
    for t in sent:
        windows[min(int(t * 10), 19)] += 1
    assert sum(2 <= n <= 10 for n in windows) >= 16, windows
    gaps = sorted(b - a for a, b in zip(sent, sent[1:], strict=False))
    assert 0.015 <= gaps[len(gaps) // 2] <= 0.025, gaps  # median: 1/50 s


async def test_max_rps_below_one_per_worker_is_kept_exact(arrivals: _ArrivalServer) -> None:
    # 1.2 req/s over 2 workers is 0.6 req/s each: neither rounded up to 1 req/s (4
    # requests, two at once) nor unthrottled. Together one every 1/1.2 s: at 0, 0.83, 1.67.
    t0 = await _run_closed(arrivals.base_url, workers=2, vus=4, max_rps=1.2, duration=2.0)
    sent = [t - t0 for t in arrivals.arrivals]
    assert len(sent) == 3, sent
    # A quarter of the 0.83 s spacing as leeway for a late wake-up (measured within 3 ms):
    # two at once, or one a second per worker, are far outside it.
    for i, t in enumerate(sent):
        assert t == pytest.approx(i / 1.2, abs=0.2), sent


async def test_think_time_cut_short_by_the_end_sends_no_extra_request(arrivals: _ArrivalServer) -> None:
    # 40 VUs ramped in over the first 0.4 s, then 0.5 s of think time after each response:
    # a VU that starts at s sends at s, s + 0.5, s + 1 and s + 1.5 (plus response times),
    # and its next request would come after the 2 s run. Its last think time is cut short
    # to the end, and that shortened sleep may wake a hair early (uvloop's timers count
    # whole milliseconds): the VU must not send then. Staggered starts make every VU's
    # last sleep end at its own sub-millisecond offset, so an early wake-up cannot hide.
    t0 = await _run_closed(arrivals.base_url, workers=2, think_time=0.5, duration=2.0,
                           stages=[{"duration": 0.4, "target": 40}, {"duration": 1.6, "target": 40}])
    sent = sorted(t - t0 for t in arrivals.arrivals)
    # A machine too busy to answer within a few ms sends fewer; never more than 4 per VU.
    assert 40 * 2 <= len(sent) <= 40 * 4, (len(sent), sent[-10:])


async def test_max_rps_split_over_workers_sends_exactly_the_slots_before_the_end(
        arrivals: _ArrivalServer) -> None:
    # 10 req/s over 3 workers for 3 s: one slot every 0.1 s from 0 to 2.9, 30 in all; the
    # next one falls on the end and is not sent. The last slots come 0.1 to 0.3 s before
    # the end, so only a worker stalled that long could lose one: the count is exact.
    t0 = await _run_closed(arrivals.base_url, workers=3, vus=6, max_rps=10, duration=3.0)
    sent = sorted(t - t0 for t in arrivals.arrivals)
    assert len(sent) == 30, sent[-5:]
