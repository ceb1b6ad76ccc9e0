"""``lab.session`` without load: what ``prepare`` plans, sets aside and refuses, and what
``conclude`` stores and reports for runs recorded through the engine's own recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from lab.errors import ExitCode, InputError
from lab.session import (
    LoadOverrides,
    RunReport,
    RunSequence,
    SkippedVariant,
    conclude,
    parse_thresholds,
    prepare,
)
from lab.spec import load_experiment
from lab.store import Store
from lab.topology.services import Component
from tests.conftest import write_experiment
from tests.synthetic import (
    NEEDS_REDIS,
    QUICK,
    T0,
    record,
    record_synthetic_sweeps,
    summary_of,
    synthetic_events,
)
from tests.tui.conftest import FakeEngine


def _components(redis_problem: str | None) -> dict[str, Component]:
    return {"redis": Component("redis", None if redis_problem else "/usr/bin/redis-server", None,
                               redis_problem),
            "postgres": Component("postgres", "/usr/bin/postgres", None, None),
            "nginx": Component("nginx", "/usr/sbin/nginx", None, None)}


def test_prepare_sets_aside_a_variant_whose_service_is_missing(tmp_path: Path) -> None:
    exp = load_experiment(write_experiment(tmp_path, NEEDS_REDIS))
    why = "redis-server is not installed; install it with: apt-get install redis-server"
    prepared = prepare(exp, components=_components(why))
    assert [p.variant for p in prepared.plans] == ["plain"]
    assert prepared.skipped == (SkippedVariant("with-redis", why),)
    assert prepared.skipped[0].as_dict() == {"variant": "with-redis", "reason": why}
    present = prepare(exp, components=_components(None))
    assert [p.variant for p in present.plans] == ["plain", "with-redis"] and present.skipped == ()


def test_prepare_applies_overrides_and_names_the_option_it_refuses(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, NEEDS_REDIS)
    exp = load_experiment(path)
    prepared = prepare(exp, variants=["plain"], overrides=LoadOverrides(duration="2s", vus=3))
    (plan,) = prepared.plans
    assert (plan.load.duration, plan.load.vus) == (2.0, 3)
    with pytest.raises(InputError) as err:
        prepare(exp, variants=["nope"])
    assert str(err.value).startswith(f"{path}: --variant: ")
    with pytest.raises(InputError) as err:
        prepare(exp, variants=["plain"], overrides=LoadOverrides(rate=5.0))
    message = str(err.value)
    assert message.startswith(f"{path}: plain: load.") and "(after command-line overrides)" in message
    with pytest.raises(InputError) as err:
        parse_thresholds(["p95<<3"])
    assert str(err.value).startswith("--threshold: ")


def test_conclude_stores_the_fits_and_checks_the_thresholds(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"only": (100.0, 0.02, 0.001)}, fit=False)
    prepared = prepare(load_experiment(tmp_path / "synthetic.toml"),
                       thresholds=parse_thresholds(["p95<1ms"]))
    with Store(db) as store:
        ids = sorted(r.id for r in store.list_runs())
        (sweep,) = store.list_sweeps()
        assert store.get_sweep(sweep.id).fits == []
        report = conclude(store, prepared, ids)
        fits = store.get_sweep(sweep.id).fits
    assert [f["model"] for f in fits] == ["usl", "amdahl"]
    assert [(variant, a.usl is not None) for _id, variant, a in report.sweeps] == [("only", True)]
    assert [r.id for r in report.runs] == ids and report.statuses == ("completed",) * 6
    # p95 is at least 13 ms at every level of this curve: every run misses the threshold.
    assert len(report.thresholds) == 6 and not any(r.passed for r in report.thresholds)
    assert report.exit_code == ExitCode.RUN_FAILED
    assert (report.thresholds_line() or "").startswith("6 threshold checks failed: run 1 (only) p95<1ms: ")
    assert report.repeat_intervals is None and report.warnings == ()


def test_the_exit_code_a_report_adds_up_to() -> None:
    assert RunReport("x", ()).exit_code == ExitCode.OK
    assert RunReport("x", ()).thresholds_line() == "no thresholds checked"


def test_the_thresholds_line_says_when_every_check_passed() -> None:
    from lab.analysis.thresholds import ThresholdResult
    from lab.thresholds import parse_threshold

    def result(run_id: int, passed: bool) -> ThresholdResult:
        return ThresholdResult(run_id, "only", parse_threshold("p95<200ms"), 12.3, passed)

    report = RunReport("x", (), thresholds=(result(1, True), result(2, True)))
    assert report.exit_code == ExitCode.OK and report.failed_thresholds == ()
    assert report.thresholds_line() == "all 2 threshold checks passed"
    one = RunReport("x", (), thresholds=(result(1, True),))
    assert one.thresholds_line() == "the 1 threshold check passed"
    missed = RunReport("x", (), thresholds=(result(1, True), result(2, False)))
    assert missed.thresholds_line() == "1 threshold check failed: run 2 (only) p95<200ms: 12.3 ms"


THREE = NEEDS_REDIS.replace('services.redis = "required"\n', '[[variants]]\nname = "third"\n')


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the sequence never got there")


async def test_a_sequence_skips_one_run_or_stops_them_all(tmp_path: Path) -> None:
    prepared = prepare(load_experiment(write_experiment(tmp_path, THREE)))
    assert [p.variant for p in prepared.plans] == ["plain", "with-redis", "third"]
    engine = FakeEngine(seconds=2)  # each run goes on until it is stopped
    with Store(tmp_path / "r.db") as store:
        runs = RunSequence(prepared, store, run_plan_fn=engine)
        task = asyncio.create_task(runs.run())
        await _until(lambda: engine.started == ["plain"])
        runs.skip("skipped to the next variant by user")
        await _until(lambda: engine.started == ["plain", "with-redis"])
        runs.stop("stopped by user")
        await task
        stored = [(r.variant, r.status, r.reason) for r in store.get_runs(runs.run_ids)]
    assert engine.started == ["plain", "with-redis"] and runs.halted
    assert stored == [("plain", "aborted", "skipped to the next variant by user"),
                      ("with-redis", "aborted", "stopped by user")]
    assert [(plan.variant, outcome.status) for plan, outcome in runs.outcomes] == [
        ("plain", "aborted"), ("with-redis", "aborted")]


def test_conclude_warns_of_a_completed_run_in_which_every_request_failed(tmp_path: Path) -> None:
    prepared = prepare(load_experiment(write_experiment(tmp_path, QUICK, "quick")))
    (plan,) = prepared.plans
    events = synthetic_events(plan, "failing", 100, 20.0, 3, T0)
    served = summary_of(events, 0, 0.5, 60_000_000, None)
    failed = replace(served, ok=0, errors=served.requests, errors_by_class={"timeout": served.requests},
                     error_rate=1.0)
    with Store(tmp_path / "r.db") as store:
        record(store, events, "completed", None, T0 + 4, failed)
        report = conclude(store, prepared, [1])
    assert report.warnings == (f"lab: warning: run 1 (default) completed, but every request failed: "
                               f"{served.requests:,} errors ({served.requests:,} timeout)",)
    assert report.exit_code == ExitCode.OK  # a warning, as lab run has always made it
