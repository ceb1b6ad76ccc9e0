"""TUI fixtures: a fixed experiments folder, a fixture database built from synthetic
events, and a fake engine that replays synthetic events instead of starting processes.

Everything here is deterministic (fixed timestamps, fixed host facts, fixed names), so
the snapshot tests see the same screen on every machine.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from lab.engine import RunControl, RunOutcome
from lab.events import (
    Event,
    IntervalStats,
    Listener,
    RunFinished,
)
from lab.plan import RunPlan, plan_runs
from lab.spec import load_experiment
from lab.store import Store
from tests.synthetic import QUICK, T0, record, summary_of, synthetic_events

BROKEN = """\
[experiment]
title = "Broken on purpose"

[target]
app = "targets.testing:app"

[load]
vus = -3

[[load.requests]]
path = "/fast"
"""


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    """A folder with a frozen copy of the caching experiment (two variants, so the
    snapshots do not follow edits of the catalog), a quick one and an invalid one."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "caching.toml").write_text((Path(__file__).parent / "fixtures" / "caching.toml").read_text())
    (folder / "quick.toml").write_text(textwrap.dedent(QUICK))
    (folder / "broken.toml").write_text(textwrap.dedent(BROKEN))
    return folder


def caching_plans(experiments_dir: Path) -> list[RunPlan]:
    """The caching experiment's plans (no-cache, lru)."""
    return plan_runs(load_experiment(experiments_dir / "caching.toml"))


@pytest.fixture
def fixture_db(tmp_path: Path, experiments_dir: Path) -> Path:
    """Four stored runs of two experiments: a no-cache / lru pair, an aborted lru run and
    a quick run with errors."""
    path = tmp_path / "fixture.db"
    no_cache, lru = caching_plans(experiments_dir)
    quick = plan_runs(load_experiment(experiments_dir / "quick.toml"))[0]
    with Store(path) as store:
        ev = synthetic_events(no_cache, "run1", 128, 280.0, 20, T0)
        record(store, ev, "completed", None, T0 + 24.5, summary_of(ev, 3, 7.779, 96_256_000, 0.0))
        ev = synthetic_events(lru, "run2", 1530, 37.0, 20, T0 + 60)
        record(store, ev, "completed", None, T0 + 84.2, summary_of(ev, 3, 0.379, 168_820_000, 0.974))
        ev = synthetic_events(lru, "run3", 1490, 39.0, 8, T0 + 3600, user_change_at=5)
        record(store, ev, "aborted", "stopped by user", T0 + 3611.0,
               summary_of(ev, 3, 0.391, 150_000_000, 0.96))
        ev = synthetic_events(quick, "run4", 900, 2.1, 3, T0 + 7200, errors_every=2)
        record(store, ev, "completed", None, T0 + 7204.0, summary_of(ev, 0, 0.5, 60_000_000, None))
    return path


class FakeEngine:
    """Replays synthetic events for each plan, then holds the run "going on" until it is
    stopped (or, with ``hold=False``, ends it as completed at once).

    Args:
        seconds: intervals to emit per run.
        hold: keep each run going until ``control.stop()``.
        generator_cpu: the generator's CPU percent in every sample.
        gate: when given, the first half of each run's intervals go out, then the rest
            once the gate is set (to watch the screen between the two).
        extra: ``(run key, seconds) -> events`` sent after the intervals (e.g. a
            balancer's replica events, ``tests.tui.fleet_events``).
    """

    def __init__(self, seconds: int = 10, hold: bool = True, generator_cpu: float = 60.0,
                 gate: asyncio.Event | None = None,
                 extra: Callable[[str, int], list[Event]] | None = None) -> None:
        self.seconds = seconds
        self.hold = hold
        self.generator_cpu = generator_cpu
        self.gate = gate
        self.extra = extra
        self.started: list[str] = []
        """Variants started, in order."""
        self.stop_reasons: list[str] = []

    async def __call__(self, plan: RunPlan, listeners: Sequence[Listener],
                       control: RunControl) -> RunOutcome:
        key = f"fake{len(self.started)}"
        self.started.append(plan.variant)
        events = synthetic_events(plan, key, 1200, 20.0, self.seconds, T0 + 100 * len(self.started),
                                  user_change_at=6, generator_cpu=self.generator_cpu)
        if self.extra is not None:
            events += self.extra(key, self.seconds)
        for event in events:
            if (self.gate is not None and isinstance(event, IntervalStats)
                    and event.t_s == self.seconds // 2):
                await self.gate.wait()
            for listener in listeners:
                listener(event)
        status, reason = "completed", None
        if self.hold:
            await control.stop_requested.wait()
            status, reason = "aborted", control.stop_reason
            self.stop_reasons.append(control.stop_reason)
        summary = summary_of(events, 0, 0.4, 100_000_000, None)
        finished = RunFinished(key, status, reason, T0 + 100 * len(self.started) + 12, summary)  # type: ignore[arg-type]
        for listener in listeners:
            listener(finished)
        return RunOutcome(key, status, reason, summary)  # type: ignore[arg-type]


@pytest.fixture
def fake_engine() -> Iterator[FakeEngine]:
    """A fake engine that holds each run until stopped."""
    yield FakeEngine()
