"""The drain after a staged run's schedule: requests still in flight when the schedule ends
land in the run's last interval, which reaches past the end. That time is no stage's: the
per-stage table shows it apart (a ``drain`` row) or marks the last stage ``*`` with the
seconds it borrows, and offered load counts only the arrivals scheduled in a row's seconds.

Pure Python on synthetic stored intervals, with exact values.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.analysis.stages import stage_figures
from lab.report.json_report import stages_json
from lab.report.table import render, stages_table
from lab.store import IntervalRow, RunRecord
from tests.synthetic import _iv

SATURATION_STAGES = [(6.0, 10.0), (6.0, 40.0), (6.0, 70.0), (6.0, 90.0), (6.0, 110.0), (6.0, 130.0),
                     (6.0, 150.0)]
"""experiments/saturation.toml at its default length: 10 req/s, ramped to 150 by 42 s."""


def _load(stages: list[tuple[float, float]], rate: float = 10.0, warmup: float = 2.0,
          model: str = "open") -> dict[str, Any]:
    """A stored ``[load]`` config (``LoadSpec.model_dump()``: durations in seconds)."""
    level = {"rate": rate} if model == "open" else {"vus": rate}
    return {"model": model, **level, "warmup": warmup, "duration": 0.0,
            "stages": [{"duration": d, "target": t} for d, t in stages]}


def _run(load: dict[str, Any]) -> RunRecord:
    return RunRecord(id=11, experiment="saturation", variant="default", status="completed",
                     reason=None, started_at="2026-01-01T00:00:00Z", ended_at=None, duration_s=49.0,
                     config={"load": load}, lab_version="0", host={}, target_url=None, summary=None)


def _saturation_intervals(last_s: float) -> list[IntervalRow]:
    """The tester's run 11: 100 req/s served from 30 s on, then a last interval from 41 s
    holding the backlog answered after the schedule's end (42 s)."""
    served = [10] * 6 + [13, 17, 22, 28, 33, 36, 42, 49, 53, 56, 64, 65, 74, 75, 78, 79, 85, 88,
                         88, 102, 94, 83, 91, 105, 103, 97, 101, 84, 98, 106, 87, 87, 92, 91, 94]
    return [_iv(float(t), n) for t, n in enumerate(served)] + [_iv(41.0, 560, duration_s=last_s)]


def test_a_backlog_answered_after_the_schedule_is_a_drain_row_not_the_last_stages() -> None:
    load = _load(SATURATION_STAGES)
    stages = stage_figures(_saturation_intervals(5.71), load)
    *ramp, last, drain = stages
    assert len(ramp) == 6 and not any(st.drain for st in ramp + [last])
    # Stage 7 (36–42 s, 130 → 150 req/s) ends with its last whole interval: it showed
    # 36–46.7, offered 140.0, served 94.4, with 4.7 s of drain in its figures.
    assert (last.start_s, last.end_s, last.intervals, last.outside_s) == (36, 41, 5, 0)
    assert last.offered == pytest.approx(130 + 2.5 * 20 / 6)  # the ramp's mean over [36, 41)
    assert last.throughput_rps == pytest.approx((87 + 87 + 92 + 91 + 94) / 5)
    # The drain: 41 s to 46.71 s, of which 1 s is stage 7's; the schedule sends arrivals
    # only in that second (148.3 of them: the ramp from 146.7 to 150), none after 42 s.
    assert drain.drain and drain.stage == 7 and drain.note is None
    assert (drain.start_s, drain.end_s, drain.stage_start_s) == (41, pytest.approx(46.71), 42)
    assert drain.outside_s == pytest.approx(1.0) and drain.drain_s == pytest.approx(4.71)
    assert drain.offered == pytest.approx((146 + 2 / 3 + 150) / 2 / 5.71)
    assert drain.throughput_rps == pytest.approx(560 / 5.71)

    text = render(stages_table(_run(load), stages), width=160)
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.split() and line.split()[0] in ("7", "drain")}
    assert rows["7"][1:4] == ["36–41", "138.3", "90.2"], text
    assert rows["drain"][1:4] == ["41–46.7*", "26.0", "98.1"], text
    assert "36–46.7" not in text
    caption = " ".join(text.split())  # the caption wraps at the table's width
    assert "drain 1.0 s in stage 7" in caption
    assert "drain: after the schedule's end at 42 s, requests still in flight were answered" in caption
    doc = stages_json(stages)
    assert [d["drain"] for d in doc] == [False] * 7 + [True]
    assert doc[-1]["drain_s"] == pytest.approx(4.71) and doc[-2]["end_s"] == 41


def test_a_short_drain_stays_the_last_stages_marked_with_the_seconds_it_borrows() -> None:
    load = _load(SATURATION_STAGES)
    stages = stage_figures(_saturation_intervals(1.3), load)
    last = stages[-1]
    assert len(stages) == 7 and not last.drain
    # [41, 42.3) lies 1 s in stage 7 and 0.3 s after the schedule's end: stage 7's, and
    # its offered load is the arrivals scheduled in [36, 42) (840) over the 6.3 s measured.
    assert (last.start_s, last.end_s, last.intervals) == (36, pytest.approx(42.3), 6)
    assert last.outside_s == pytest.approx(0.3) and last.drain_s == pytest.approx(0.3)
    assert last.offered == pytest.approx(140 * 6 / 6.3)
    assert last.throughput_rps == pytest.approx((87 + 87 + 92 + 91 + 94 + 560) / 6.3)
    text = render(stages_table(_run(load), stages), width=160)
    assert "36–42.3*" in text
    assert "stage 7 0.3 s after the schedule's end" in " ".join(text.split())
    assert "drain" not in [line.split()[0] for line in text.splitlines() if line.split()]


def test_a_last_stage_whose_interval_is_mostly_drain_says_where_it_went() -> None:
    # The closed model: 10 VUs for 2 s, then 20 for 1 s; the last interval runs from 2 s to
    # 4.5 s (1 s of the stage, 1.5 s of requests finishing after the end at 3 s).
    load = _load([(2.0, 10.0), (1.0, 20.0)], rate=10, warmup=0.0, model="closed")
    intervals = [_iv(0.0, 100), _iv(1.0, 100), _iv(2.0, 150, duration_s=2.5)]
    first, second, drain = stage_figures(intervals, load)
    assert (first.start_s, first.end_s, first.offered) == (0, 2, 10)
    assert second.throughput_rps is None
    assert second.note == "its interval lies mostly in the drain (next row)"
    assert second.offered == pytest.approx(15.0)  # its own span's schedule: 10 → 20 VUs
    # VU-seconds scheduled in the drain's 2.5 s: 15 (the ramp's second), none after.
    assert drain.drain and drain.offered == pytest.approx(15 / 2.5)
    assert drain.throughput_rps == pytest.approx(60.0)


def test_every_measured_interval_is_in_a_row_so_the_rows_add_up_to_the_run() -> None:
    # The tester's `lab run saturation --duration 5s`: 7 stages of 0.71 s, a 2 s warm-up;
    # the last interval, [4, 5.64), lies 0.29 s in stage 6, 0.71 s in stage 7 and 0.64 s
    # in the drain: no span holds half of it, and its 162 requests were in no row.
    load = _load([(5 / 7, target) for _d, target in SATURATION_STAGES])
    intervals = [_iv(0.0, 11), _iv(1.0, 42), _iv(2.0, 81), _iv(3.0, 83), _iv(4.0, 162, duration_s=1.64)]
    stages = stage_figures(intervals, load)
    assert sum(st.requests for st in stages) == 81 + 83 + 162
    assert sum(row["requests"] for row in stages_json(stages)) == 81 + 83 + 162
    last = stages[6]
    assert (last.start_s, last.end_s, last.intervals, last.drain) == (4, pytest.approx(5.64), 1, False)
    assert last.outside_s == pytest.approx(1.64 - 5 / 7 * 1)  # the stage holds 0.71 s of it
    assert last.drain_s == pytest.approx(0.64)
    text = render(stages_table(_run(load), stages), width=140)
    assert "4–5.6*" in text, text
