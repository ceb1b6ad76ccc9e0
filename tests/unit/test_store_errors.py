"""A damaged results.db in the TUI's History screen: one notification, never a traceback.

The helpers here (a stored database, an immutable file, damage to a table) serve
tests/e2e/test_store_errors.py too.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.store import Store
from tests.conftest import write_experiment
from tests.synthetic import ONE_SECOND as BASE
from tests.synthetic import T0, record, summary_of, synthetic_events


def _stored_db(tmp_path: Path, runs: int = 2, seconds: int = 3) -> Path:
    """A results.db with synthetic runs 1..runs, written by the StoreRecorder."""
    from lab.plan import plan_runs
    from lab.spec import load_experiment

    path = tmp_path / "stored.db"
    plan = plan_runs(load_experiment(write_experiment(tmp_path, BASE, "stored")))[0]
    with Store(path) as store:
        for i in range(runs):
            events = synthetic_events(plan, f"run{i}", 500, 3.0, seconds, T0 + 60 * i)
            record(store, events, "completed", None, T0 + 60 * i + seconds + 1,
                   summary_of(events, 0, 0.5, 50_000_000, None))
    return path


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Make files immutable (``chattr +i``; skips where not permitted); undone afterwards,
    or pytest could not remove them."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed")
        res = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            pytest.skip(f"chattr +i is not permitted here: {res.stderr.strip()}")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


# ------------------------------------------------------------------- 11: damaged


def _damage(db: Path, table: str | None) -> None:
    """Overwrite with junk the root page of ``table``, or every page after the first
    (the schema stays readable, every table is not)."""
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master WHERE rootpage > 0"))
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    junk = bytes(range(256)) * (page_size // 256)
    with db.open("r+b") as f:
        for page in ([roots[table]] if table else range(2, pages + 1)):
            f.seek((page - 1) * page_size)
            f.write(junk)


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "quick.toml").write_text(textwrap.dedent(BASE))
    return folder


"""A target that leaves a file behind as soon as any process imports it."""


async def test_the_tui_history_of_a_damaged_database_is_one_notification(tmp_path: Path,
                                                                        experiments_dir: Path) -> None:
    from lab.tui.app import LabApp

    db = _stored_db(tmp_path)
    _damage(db, None)
    app = LabApp(db, experiments_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("h")
        for _ in range(100):
            await pilot.pause(0.05)
            if app._notifications:
                break
        messages = [n.message for n in app._notifications]
    assert len(messages) == 1, messages
    assert f"{db}: cannot " in messages[0] and "database disk image is malformed" in messages[0]
    assert "\n" not in messages[0]


# ------------------------------------------------- a database replaced mid-run


def test_a_database_replaced_mid_run_is_not_written_and_the_run_is_kept(tmp_path: Path) -> None:
    from lab.plan import plan_runs
    from lab.spec import load_experiment
    from lab.store import StoreRecorder

    other = _stored_db(tmp_path, runs=1)
    db = tmp_path / "results.db"
    plan = plan_runs(load_experiment(write_experiment(tmp_path, BASE, "replaced")))[0]
    events = synthetic_events(plan, "replaced-run", 500, 3.0, 4, T0)
    with Store(db) as store:
        recorder = StoreRecorder(store)
        half = len(events) // 2
        for event in events[:half]:
            recorder(event)
        before = other.read_bytes()
        other.replace(db)  # `mv stored.db results.db` while the run goes on
        for event in events[half:]:
            recorder(event)
        from lab.events import RunFinished

        recorder(RunFinished("replaced-run", "completed", None, T0 + 5, summary_of(events, 0, 0.5, 1, None)))
        (problem,) = recorder.problems
    assert db.read_bytes() == before, "the file put in its place was written"
    line = problem.describe()
    assert line.startswith(f"lab: {db}: the results database was replaced by another file while the lab "
                           "wrote to it; the default run: all of it is kept in "), line
    with Store(problem.kept_in, readonly=True) as spare:  # type: ignore[arg-type]
        (run,) = spare.list_runs()
        assert run.status == "completed"
        assert len(spare.intervals(run.id)) == 4


def test_runs_of_a_sweep_kept_elsewhere_are_named_with_their_level(tmp_path: Path) -> None:
    from lab.events import RunFinished
    from lab.plan import plan_runs
    from lab.spec import load_experiment
    from lab.store import StoreRecorder
    from tests.synthetic import USL_DEMO

    db = tmp_path / "results.db"
    body = USL_DEMO + '[sweep]\nparameter = "vus"\nlevels = [2, 8]\nduration = "1s"\n'
    plans = plan_runs(load_experiment(write_experiment(tmp_path, body, "levels")))
    with Store(db) as store:
        recorder = StoreRecorder(store)
        for n, plan in enumerate(plans):
            events = synthetic_events(plan, f"level-{n}", 500, 3.0, 2, T0 + 10 * n)
            for event in events:
                recorder(event)
            recorder(RunFinished(f"level-{n}", "completed", None, T0 + 10 * n + 3,
                                 summary_of(events, 0, 0.5, 1, None)))
        db.unlink()  # `rm results.db` once the sweep's runs ended
        recorder.keep_if_gone()
        lines = [p.describe() for p in recorder.problems]
    assert len(lines) == 2
    assert "; the default vus=2 run: all of it is kept in " in lines[0], lines[0]
    assert "; the default vus=8 run: all of it is kept in " in lines[1], lines[1]


def test_a_database_deleted_after_the_last_run_ended_still_keeps_the_run(tmp_path: Path) -> None:
    from lab.plan import plan_runs
    from lab.spec import load_experiment
    from lab.store import StoreRecorder

    db = tmp_path / "results.db"
    plan = plan_runs(load_experiment(write_experiment(tmp_path, BASE, "after")))[0]
    events = synthetic_events(plan, "after-run", 500, 3.0, 3, T0)
    with Store(db) as store:
        recorder = StoreRecorder(store)
        for event in events:
            recorder(event)
        from lab.events import RunFinished

        recorder(RunFinished("after-run", "completed", None, T0 + 4, summary_of(events, 0, 0.5, 1, None)))
        recorder.keep_if_gone()
        assert recorder.problems == []  # in place: nothing to keep elsewhere
        db.unlink()
        recorder.keep_if_gone()
        (problem,) = recorder.problems
    assert problem.describe().startswith(f"lab: {db}: the results database was deleted while the lab "
                                         "wrote to it; the default run: all of it is kept in "), problem
    with Store(problem.kept_in, readonly=True) as spare:  # type: ignore[arg-type]
        (run,) = spare.list_runs()
        assert run.status == "completed" and run.summary is not None
        assert len(spare.intervals(run.id)) == 3
