"""The TUI and ``lab run`` take one path (``lab.session``): a sweep run from the TUI stores
its fits, the same experiment run both ways stores the same kind of rows, and the TUI
sets aside or refuses variants exactly as the CLI does."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.widgets import Static

from lab.errors import ExitCode
from lab.store import Store
from lab.topology.services import find_components
from lab.tui.app import LabApp
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.live import LiveScreen
from tests.conftest import leaves_no_processes, run_lab, write_experiment
from tests.synthetic import NEEDS_REDIS, USL_DEMO
from tests.tui.conftest import FakeEngine
from tests.tui.test_screens import _text, plain
from tests.tui.waits import settle, wait_until

SIZE = (100, 32)

SWEEP = USL_DEMO + """
[sweep]
parameter = "vus"
levels = [1, 2, 3, 4, 5, 6]
duration = "0.6s"
warmup = "0s"
[[variants]]
name = "only"
"""
"""The smallest sweep that gets a fit: six levels of 0.6 s on the usl-demo target."""


async def _run_all_from_the_tui(folder: Path, db: Path, within_s: float = 120) -> tuple[LiveScreen, str]:
    """Open the TUI on ``folder``, run every variant of its one experiment, wait for the end;
    the Live screen and what its "Finished runs" panel shows."""
    app = LabApp(db, folder)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen", 60)
        live = app.screen
        assert isinstance(live, LiveScreen)
        await wait_until(pilot, lambda: not live.running, "the runs to end", within_s)
        await settle(pilot, app)
        return live, plain(live.query_one("#outcomes", Static).content)


MEASURED = {
    ("errors", "*"),  # a request that failed by chance
    ("summaries", "generator_bound_reason"),  # set when the generator ran short of CPU
    ("summaries", "load_not_achieved_reason"),
    # Set when a resource sample (one a second) falls inside a level's 0.6 s window.
    ("summaries", "generator_peak_cpu_percent"),
    ("summaries", "generator_cpu_s_per_1k"),
    ("summaries", "target_cpu_s_per_1k"),
    ("summaries", "target_peak_rss_bytes"),
    ("fits", "n_star"),  # a peak exists only when the fitted κ > 0
    ("fits", "kappa_stderr"),  # no spread of a parameter fitted at its bound (κ = 0)
    ("fits", "sigma_stderr"),
    ("fits", "lambda_stderr"),
}
"""Tables and columns whose rows or values exist only when the measured figures say so."""


def _tables(db: Path) -> dict[str, set[str]]:
    """Each table with rows, and the columns with a value in at least one of its rows
    (``MEASURED`` left out)."""
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table' "
                                            "and name not like 'sqlite_%'")]
        out = {}
        for name in names:
            columns = [r[1] for r in conn.execute(f"pragma table_info('{name}')")]
            if (name, "*") in MEASURED:
                continue
            filled = {c for c in columns if (name, c) not in MEASURED
                      and conn.execute(f'select 1 from "{name}" where "{c}" is not null limit 1').fetchone()}
            if filled:
                out[name] = filled
    return out


@dataclass(frozen=True)
class TuiSweep:
    """The ``SWEEP`` experiment run from the TUI (every variant, "a") into ``db``, read-only
    for the tests: how the Live screen ended and what it showed."""

    path: Path
    """The experiment file (``sweep.toml``), for a CLI run of the same experiment."""
    db: Path
    statuses: list[str]
    """The status of each finished run, in order."""
    sweeps: list[str]
    """The variants of the sweeps in the Live screen's report."""
    outcomes: str
    """What the "Finished runs" panel showed."""


@pytest.fixture(scope="module")
def tui_sweep(tmp_path_factory: pytest.TempPathFactory) -> TuiSweep:
    """One TUI run of the sweep for the module: both tests below read the same six levels."""
    tmp = tmp_path_factory.mktemp("tui-sweep")
    folder = tmp / "experiments"
    folder.mkdir()
    path = write_experiment(folder, SWEEP, "sweep")
    db = tmp / "tui.db"
    with leaves_no_processes("the TUI's sweep"):
        live, outcomes = asyncio.run(_run_all_from_the_tui(folder, db))
    return TuiSweep(path, db, [outcome.status for _variant, outcome in live.outcomes],
                    [variant for _id, variant, _a in live.report.sweeps] if live.report else [],
                    outcomes)


def test_a_sweep_run_from_the_tui_stores_its_fits(tui_sweep: TuiSweep) -> None:
    assert tui_sweep.statuses == ["completed"] * 6
    with Store(tui_sweep.db, readonly=True) as store:
        (sweep,) = store.list_sweeps()
        stored = store.get_sweep(sweep.id)
    assert [fit["model"] for fit in stored.fits] == ["usl", "amdahl"]
    assert stored.report, "the sweep's analysis is stored with its fits"
    assert tui_sweep.sweeps == ["only"]
    assert "sweep only: USL fit stored (σ " in tui_sweep.outcomes


def test_one_experiment_run_both_ways_stores_the_same_rows(tmp_path: Path, tui_sweep: TuiSweep) -> None:
    # The same file the TUI ran (its name is the experiment's), into another database.
    cli_db, tui_db = tmp_path / "cli.db", tui_sweep.db
    res = run_lab("run", str(tui_sweep.path), "--db", str(cli_db), "--format", "json", timeout=180)
    assert res.returncode == 0, res.stderr

    def stored(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[str]]:
        with Store(db, readonly=True) as store:
            runs = sorted(store.list_runs(), key=lambda r: r.id)
            sweeps = [store.get_sweep(s.id) for s in store.list_sweeps()]
        return ([(r.experiment, r.variant, r.status, r.sweep_level, r.summary is not None,
                  sorted(r.config)) for r in runs],
                [(s.experiment, s.variant, s.parameter, sorted(s.report)) for s in sweeps],
                [fit["model"] for s in sweeps for fit in s.fits])

    cli_runs, cli_sweeps, cli_fits = stored(cli_db)
    tui_runs, tui_sweeps, tui_fits = stored(tui_db)
    assert tui_runs == cli_runs and len(cli_runs) == 6
    assert tui_sweeps == cli_sweeps
    assert tui_fits == cli_fits == ["usl", "amdahl"]
    tables = _tables(cli_db)
    assert {"runs", "summaries", "intervals", "resources", "sweeps", "fits"} <= set(tables)
    tui_tables = _tables(tui_db)
    assert tui_tables == tables, {t: (tables.get(t, set()) ^ tui_tables.get(t, set()))
                                  for t in set(tables) | set(tui_tables)}
    # What the CLI printed is what it stored.
    doc = json.loads(res.stdout)
    assert [r["variant"] for r in doc["runs"]] == ["only"] * 6 and doc["sweeps"][0]["fit"] is not None




async def test_the_tui_skips_a_variant_whose_service_is_missing_as_the_cli_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    path = write_experiment(folder, NEEDS_REDIS, "skip")
    # A PATH without redis-server: the lab looks it up there.
    no_redis = str(Path(sys.executable).parent)
    res = run_lab("run", str(path), "--db", str(tmp_path / "cli.db"), "--format", "json",
                  env={"PATH": no_redis})
    assert res.returncode == 0, res.stderr
    (cli_line,) = [line for line in res.stderr.splitlines() if "skipping variant" in line]
    monkeypatch.setenv("PATH", no_redis)
    reason = find_components()["redis"].problem
    assert reason is not None and "apt-get install redis-server" in reason
    assert cli_line == f"lab: skipping variant with-redis: {reason}"

    engine = FakeEngine(seconds=2, hold=False)
    app = LabApp(tmp_path / "tui.db", folder, run_plan_fn=engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen) and not app.screen.running,
                         "the runs to end")
        await settle(pilot, app)
        live = app.screen
        assert isinstance(live, LiveScreen)
        messages = [str(n.message) for n in app._notifications]
        outcomes = plain(live.query_one("#outcomes", Static).content)
    assert engine.started == ["plain"]
    assert cli_line.removeprefix("lab: ") in messages
    assert "with-redis skipped" in outcomes
    assert [s["variant"] for s in json.loads(res.stdout)["skipped"]] == ["with-redis"]


def _does_not_import(tmp_path: Path) -> tuple[Path, Path]:
    """An experiment folder whose one experiment's target app is found where its process
    looks (the cheap check passes) but fails to import; and the experiment's path."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "broken_app.py").write_text('raise RuntimeError("broken on purpose")\n')
    folder = tmp_path / "experiments"
    folder.mkdir()
    return folder, write_experiment(folder, f"""
        [experiment]
        title = "does not import"
        [target]
        app = "broken_app:app"
        app_dir = "{code}"
        [load]
        vus = 1
        duration = "1s"
        [[load.requests]]
        path = "/"
    """, "broken")


async def test_the_tui_refuses_a_target_that_does_not_import_as_the_cli_does(tmp_path: Path) -> None:
    folder, path = _does_not_import(tmp_path)
    res = run_lab("run", str(path), "--db", str(tmp_path / "cli.db"))
    assert res.returncode == 2 and res.stdout == ""
    (cli_line,) = res.stderr.splitlines()
    assert "target.app: cannot import 'broken_app:app'" in cli_line and "broken on purpose" in cli_line

    engine = FakeEngine(hold=False)
    app = LabApp(tmp_path / "tui.db", folder, run_plan_fn=engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: bool(app._notifications), "the refusal")
        await settle(pilot, app)
        assert isinstance(app.screen, ExperimentsScreen)
        messages = [str(n.message) for n in app._notifications]
    assert messages == [cli_line] and engine.started == []
    with Store(tmp_path / "tui.db", readonly=True) as store:
        assert store.list_runs() == []


async def test_an_auto_run_that_exits_when_done_ends_on_a_target_that_does_not_import(
        tmp_path: Path) -> None:
    folder, _path = _does_not_import(tmp_path)
    engine = FakeEngine(hold=False)
    app = LabApp(tmp_path / "tui.db", folder, run_plan_fn=engine, autorun="broken", exit_when_done=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.return_code is not None, "the app to exit")
    assert app.return_code == ExitCode.BAD_INPUT and engine.started == []


async def test_the_live_screen_names_each_sweep_level(tmp_path: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write_experiment(folder, SWEEP.replace("[1, 2, 3, 4, 5, 6]", "[2, 4, 8]"), "sweep")
    gate = asyncio.Event()
    engine = FakeEngine(seconds=2, hold=False, gate=gate)
    app = LabApp(tmp_path / "tui.db", folder, run_plan_fn=engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the Live screen")
        live = app.screen
        assert isinstance(live, LiveScreen)
        # Held mid-run: the first level's run is on screen, named with its level.
        await wait_until(pilot, lambda: bool(live.snapshot.t), "the first interval")
        await wait_until(pilot, lambda: "(run 1 of 3)" in _text(app, "#run-title"), "the heading")
        assert "sweep / only vus=2" in _text(app, "#run-title")
        assert "variant" not in _text(app, "#run-title")
        gate.set()
        await wait_until(pilot, lambda: not live.running, "the runs to end")
        await settle(pilot, app)
        outcomes = _text(app, "#outcomes")
    assert engine.started == ["only"] * 3
    assert [name for name, _outcome in live.outcomes] == ["only vus=2", "only vus=4", "only vus=8"]
    for level in (2, 4, 8):
        assert f"only vus={level} completed" in outcomes, outcomes
