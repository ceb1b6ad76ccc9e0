"""Offered against achieved load on stored intervals: a closed-model run whose VUs cannot keep
the pace says so; one without an intended rate, or the drain after a schedule, never does.
"""

from __future__ import annotations

from typing import Any

from lab.analysis.offered import offered_load
from tests.synthetic import _iv


def _closed(max_rps: float | None, think_time: float = 0.0, vus: int = 2) -> dict[str, Any]:
    return {"model": "closed", "vus": vus, "duration": 4.0, "warmup": 0.0, "stages": [],
            "max_rps": max_rps, "think_time": think_time}


def test_a_paced_closed_model_run_whose_vus_cannot_keep_the_pace_is_flagged() -> None:
    # 2 VUs whose answers take 50 ms reach 40 req/s: paced at 200 they fall short, and
    # each VU's wait for its answer hides what clients arriving at 200/s would see.
    intervals = [_iv(float(t), 40) for t in range(4)]
    short = offered_load(intervals, _closed(200), 0.0)
    assert short is not None and short.not_achieved
    assert (short.offered_rps, short.achieved_rps) == (200, 40)
    assert "coordinated omission" in (short.reason or "")
    kept = offered_load(intervals, _closed(40), 0.0)
    assert kept is not None and not kept.not_achieved and kept.reason is None


def test_a_closed_model_without_an_intended_rate_is_never_flagged() -> None:
    intervals = [_iv(float(t), 8) for t in range(4)]
    assert offered_load(intervals, _closed(None, think_time=0.2), 0.0) is None
    # 2 VUs thinking 1 s send at most 2 req/s even at zero latency: a max_rps of 50 is a
    # cap out of reach, not a pace.
    assert offered_load(intervals, _closed(50, think_time=1.0), 0.0) is None


def test_the_drain_after_the_schedule_is_not_compared() -> None:
    # 100 req/s offered for 3 s against a target serving 50: the backlog answered in the
    # 3 s drain after the end would read as 100 % achieved over the 6 s.
    load = {"model": "open", "rate": 100, "duration": 3.0, "warmup": 0.0, "stages": []}
    intervals = [_iv(0.0, 50), _iv(1.0, 50), _iv(2.0, 200, duration_s=4.0)]
    got = offered_load(intervals, load, 0.0)
    assert got is not None and got.seconds == 2 and got.offered_rps == 100 and got.achieved_rps == 50
