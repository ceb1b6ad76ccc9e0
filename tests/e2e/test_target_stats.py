"""Reading a target's stats during a run: a busy target still answers them, on time."""

from __future__ import annotations

from lab.events import RunFinished, TargetSample
from tests.e2e.test_engine import _of, _plan, _run


async def test_a_target_whose_event_loop_is_blocked_still_reports_its_stats_every_second() -> None:
    # One request holds the target's event loop for 3.5 s, as CPU-bound work inline does:
    # on its own port the target answers nothing meanwhile, and a stats read gives up
    # after 2 s. Its stats port is answered by a thread of its own.
    events = await _run(_plan({"vus": 1, "duration": "2s", "timeout": "6s",
                               "requests": [{"path": "/block/3500"}]}))
    finished = _of(events, RunFinished)[0]
    assert finished.status == "completed", finished.reason
    stamped = [s.t_s for s in _of(events, TargetSample)]
    # A reading in the middle of each second while the loop was held, stamped so.
    assert {0.5, 1.5, 2.5} <= set(stamped), stamped
    assert finished.target_stats["requests"] == 1, finished.target_stats
