"""Per-stage figures and the Little's law check on synthetic stored intervals."""

from __future__ import annotations

from typing import Any

import pytest

from lab.analysis.stages import stage_figures
from lab.report.table import render, stages_table
from lab.store import RunRecord
from tests.synthetic import _iv

# -- pure Python: which intervals a stage gets, and its offered load ----------------------


def _open_load(rate: float, stages: list[tuple[float, float]], warmup: float = 0.0) -> dict[str, Any]:
    """A stored ``[load]`` config (``LoadSpec.model_dump()``: durations in seconds)."""
    return {"model": "open", "rate": rate, "warmup": warmup, "duration": 0.0,
            "stages": [{"duration": d, "target": t} for d, t in stages]}


def test_offered_is_the_mean_scheduled_rate_not_the_rate_at_each_intervals_end() -> None:
    # 10 → 50 req/s over 4 s, then 50 held: the worker stores each interval's end rate
    # (20, 30, 40, 50), whose mean (35) is 17 % above the ramp's mean, 30.
    load = _open_load(10, [(4, 50), (4, 50)])
    intervals = [_iv(t, 20 + 10 * t, target_rate=min(20 + 10 * t, 50), stage=t // 4) for t in range(8)]
    first, second = stage_figures(intervals, load)
    assert (first.start_s, first.end_s, first.intervals) == (0, 4, 4)
    assert first.offered == pytest.approx(30.0) and second.offered == pytest.approx(50.0)
    assert first.throughput_rps == pytest.approx(35.0)  # (20 + 30 + 40 + 50) / 4
    # A 1 s warm-up leaves [1, 4): the ramp from 20 to 50, mean 35.
    first, _ = stage_figures(intervals, {**load, "warmup": 1.0})
    assert (first.start_s, first.intervals, first.offered) == (1, 3, pytest.approx(35.0))
    # A user who set 100 req/s at 2 s: [0, 2) ramps 10 → 30 (mean 20), then 100.
    first, second = stage_figures(intervals, load, user_levels=[(2.0, 100.0)])
    assert first.offered == pytest.approx(60.0) and second.offered == pytest.approx(100.0)
    # The closed model: the mean scheduled VUs, 2 → 10 over 4 s.
    closed = {"model": "closed", "vus": 2, "warmup": 0.0, "duration": 0.0,
              "stages": [{"duration": 4.0, "target": 10}, {"duration": 4.0, "target": 10}]}
    assert [st.offered for st in stage_figures(intervals, closed)] == [pytest.approx(6.0), 10]


def test_intervals_go_to_the_stage_covering_most_of_them_and_short_stages_say_why() -> None:
    # Boundaries off whole seconds (as --duration scaling makes them): 10 req/s on
    # [0, 2.4), a 0.2 s ramp to 90, 90 held on [2.6, 5.6), then a ramp to 30 by 8 s.
    load = _open_load(10, [(2.4, 10), (0.2, 90), (3.0, 90), (2.4, 30)])
    counts = [10, 10, 50, 90, 90, 88, 70, 75]
    intervals = [_iv(float(t), n) for t, n in enumerate(counts[:-1])]
    intervals.append(_iv(7.0, counts[-1], duration_s=1.5))  # the last one holds the drain
    steady, ramp, burst, down = stage_figures(intervals, load)
    # [2, 3) lies 0.4 / 0.2 / 0.4 in three stages: a tie, so the earlier stage's, flagged
    # with the 0.6 s it holds of the others; offered over the same 3 s: 10 on [0, 2.4), the
    # ramp's 10 → 90 (mean 50) on [2.4, 2.6), 90 on [2.6, 3).
    assert (steady.start_s, steady.end_s, steady.intervals) == (0, 3, 3)
    assert steady.outside_s == pytest.approx(0.6)
    assert steady.offered == pytest.approx((10 * 2.4 + 50 * 0.2 + 90 * 0.4) / 3)
    assert steady.throughput_rps == pytest.approx(70 / 3)
    # [5, 6) is 0.6 in the burst, 0.4 in the ramp down: the burst's, flagged.
    assert (burst.start_s, burst.end_s, burst.intervals) == (3, 6, 3)
    assert burst.outside_s == pytest.approx(0.4)
    # Offered over the same 3 s: 90 on [3, 5.6), the ramp's 90 → 80 on [5.6, 6).
    assert burst.offered == pytest.approx((90 * 2.6 + 0.4 * 85) / 3)
    assert burst.throughput_rps == pytest.approx(268 / 3)
    # The last stage keeps a short drain after the schedule's end (8 s), marked as borrowed:
    # throughput over the 2.5 s measured, offered = the 110 arrivals scheduled (80 → 30
    # req/s over 2 s) over the same 2.5 s, nothing being scheduled in the drain.
    assert (down.start_s, down.end_s, down.intervals, down.outside_s, down.drain_s) == (6, 8.5, 2, 0.5, 0.5)
    assert down.offered == pytest.approx(44.0) and down.throughput_rps == pytest.approx(145 / 2.5)
    # The 0.2 s ramp has no interval of its own: a row with its offered load and why.
    assert (ramp.start_s, ramp.end_s) == (pytest.approx(2.4), pytest.approx(2.6))
    assert ramp.offered == pytest.approx(50.0) and ramp.throughput_rps is None
    assert ramp.note == "0.2 s long: shorter than one 1 s interval"
    # In the warm-up, or after a run that stopped early.
    notes = [st.note for st in stage_figures(intervals[:4], {**load, "warmup": 3.0})]
    assert notes == ["in the warm-up", "in the warm-up", None, "the run ended before it"]


def test_a_burst_second_no_longer_fails_the_steady_stage_before_it() -> None:
    # async-queue with --duration 8s: stage durations scaled by 0.5 carry float noise
    # (3.0000000000000004), so [3, 4) used to count as the steady stage's though it is the
    # burst's: the steady stage showed a Little's law ✗ (2.01 measured vs 1.46 X·W).
    load = _open_load(20, [(3.0000000000000004, 20), (0.10000000000000002, 90),
                           (1.5000000000000002, 90), (0.10000000000000002, 20),
                           (3.3000000000000003, 20)], warmup=2.0)
    intervals = [_iv(0, 20, in_flight=0.35, latency_ms=17.5), _iv(1, 20, in_flight=0.35, latency_ms=17.5),
                 _iv(2, 20, in_flight=0.35, latency_ms=17.5), _iv(3, 73, in_flight=3.66, latency_ms=50),
                 _iv(4, 77, in_flight=29.2, latency_ms=380), _iv(5, 22, in_flight=0.39, latency_ms=17.5),
                 _iv(6, 20, in_flight=0.35, latency_ms=17.5), _iv(7, 20, in_flight=0.35, latency_ms=17.5)]
    stages = stage_figures(intervals, load)
    assert [(st.start_s, st.end_s) for st in stages if st.note is None] == [(2, 3), (3, 5), (5, 8)]
    steady = stages[0]
    assert steady.offered == pytest.approx(20.0) and steady.little_ok
    assert [st.note is None for st in stages] == [True, False, True, False, True]


def test_stage_table_flags_blended_stages_explains_empty_ones_and_a_growing_queue() -> None:
    load = _open_load(20, [(6.2, 20), (0.2, 90), (3.0, 90)])
    intervals = [_iv(float(t), 20, in_flight=0.2) for t in range(6)]
    # A burst past capacity: 90 arrive per second, 20 finish, the queue grows.
    intervals += [_iv(6.0, 20, in_flight=30.0, latency_ms=500),
                  _iv(7.0, 20, in_flight=100.0, latency_ms=1000),
                  _iv(8.0, 20, in_flight=170.0, latency_ms=1500)]
    stages = stage_figures(intervals, load)
    burst = stages[2]
    # In flight in the second before the burst, and in its last second.
    assert burst.little_ok is False and burst.queue_change == (0.2, 170.0)
    assert stages[0].queue_change is None  # steady
    run = RunRecord(id=7, experiment="x", variant="inline", status="completed", reason=None,
                    started_at="2026-01-01T00:00:00Z", ended_at=None, duration_s=9.0,
                    config={"load": load}, lab_version="0", host={}, target_url=None, summary=None)
    text = render(stages_table(run, stages), width=140)
    assert "0.2 s long: shorter than one 1 s interval" in text
    assert "6.2–6.4" in text  # the short stage's own span
    # [6, 7) lies 0.2 s in stage 1, 0.2 s in the ramp and 0.6 s in the burst: the burst's.
    assert "6–9*" in text and "stage 3 0.4 s" in text
    assert "✗ queue grew 0.20→170" in text
