"""A results.db that cannot be written, or is damaged: one line and exit 2 before any
process starts, never a traceback after the load; a database that stops taking writes
mid-run loses nothing, and says where the run went.

Real SQLite files; "cannot be written" is made real, not a permission bit root ignores:
an immutable file (``chattr +i``, where the machine permits it) or, for a user who is
not root, a read-only file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.results import open_results
from lab.store import Store
from tests.conftest import (
    REPO,
    lab_in_process,
    leaves_no_processes,
    one_line_error,
    run_lab,
    write_experiment,
)
from tests.synthetic import ONE_SECOND as BASE
from tests.unit.test_store_errors import _damage, _stored_db, experiments_dir, immutable  # noqa: F401 (fixtures)

MARKER_APP = """\
from pathlib import Path

Path(__file__).with_name("imported.flag").write_text("the target was imported")


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""
"""A target that leaves a file behind as soon as any process imports it."""


def _experiment_with_marker(tmp_path: Path) -> tuple[Path, Path]:
    """An experiment whose target marks its import; returns (file, marker)."""
    (tmp_path / "marker_app.py").write_text(MARKER_APP)
    exp = write_experiment(tmp_path, f"""
        [experiment]
        title = "marker"
        [target]
        app = "marker_app:app"
        app_dir = "{tmp_path}"
        [load]
        vus = 1
        duration = "1s"
        [[load.requests]]
        path = "/"
        """, "marked")
    return exp, tmp_path / "imported.flag"


def _spares(folder: Path) -> list[Path]:
    """The results databases a run was kept in when results.db stopped taking writes."""
    return sorted(folder.glob("results.unsaved-*.db"))


# ------------------------------------------------------------ 10: cannot be written


@pytest.mark.parametrize("how", ["immutable", "read-only file"])
def test_a_database_that_cannot_be_written_is_refused_before_anything_starts(
        tmp_path: Path, how: str, immutable: Callable[[Path], None]) -> None:
    db = _stored_db(tmp_path)
    before = db.read_bytes()
    if how == "immutable":
        immutable(db)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes a read-only file anyway (the immutable case covers root)")
        db.chmod(0o444)
    exp, marker = _experiment_with_marker(tmp_path)
    res = run_lab("run", str(exp), "--db", str(db), "-q", cwd=tmp_path, timeout=60)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{db}: cannot write the results database: "), line
    assert not marker.exists(), "a process imported the target before the database was checked"
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("*.unsaved-*"))


def test_an_experiment_file_name_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    exp, marker = _experiment_with_marker(tmp_path)
    odd = os.fsencode(tmp_path) + b"/caf\xe9.toml"
    os.rename(exp, odd)
    db = tmp_path / "results.db"
    res = subprocess.run([sys.executable, "-m", "lab", "run", odd, "--db", str(db), "-q"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert "caf" in line and "UTF-8" in line, line
    assert not marker.exists() and not db.exists()


def _wait_for_stored_interval(db: Path, proc: subprocess.Popen[str], run_id: int) -> None:
    """Poll results.db until run ``run_id``, running, has stored an interval (the lab
    still runs)."""
    stored = 0
    deadline = time.monotonic() + 30
    while stored < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    stored = conn.execute(
                        "SELECT count(*) FROM intervals JOIN runs ON runs.id = intervals.run_id "
                        "WHERE runs.status = 'running' AND runs.id = ?", [run_id]).fetchone()[0]
            except sqlite3.Error:
                stored = 0
    assert stored >= 1, "the run stored no interval while running"


def _lab_run_spoiled(exp: Path, db: Path, spoil: Callable[[Path], None], run_id: int) -> list[str]:
    """Run ``lab run EXP --db DB -q``, ``spoil`` the database once run ``run_id`` is running
    and has stored an interval; check the lab ends with exit 1, no traceback and nothing on
    stdout, and return its lines on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(exp), "--db", str(db), "-q"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_stored_interval(db, proc, run_id)
        spoil(db)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and out == ""
    return err.splitlines()


def _run_and_spoil(tmp_path: Path, spoil: Callable[[Path], None]) -> tuple[str, Path]:
    """Start ``lab run`` on a 4 s run, ``spoil`` results.db once a running run has stored an
    interval, and check the lab ends with exit 1 and one line on stderr; return the line
    and the one results.unsaved-*.db it made."""
    exp = write_experiment(tmp_path, BASE.replace('duration = "1s"', 'duration = "4s"'), "mid")
    lines = _lab_run_spoiled(exp, tmp_path / "results.db", spoil, run_id=1)
    assert len(lines) == 1, lines
    spares = _spares(tmp_path)
    assert len(spares) == 1, lines
    assert f"all of it is kept in {spares[0]} (lab show --db {spares[0]} 1)" in lines[0]
    # Nothing measured is lost: the spare holds the whole run, and its figures add up.
    res = lab_in_process("show", "1", "--db", str(spares[0]), "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["run"]["status"] == "completed"
    intervals = doc["intervals"]
    assert [iv["t_s"] for iv in intervals] == [float(k) for k in range(len(intervals))]
    assert len(intervals) >= 4
    assert doc["run"]["summary"]["requests"] == sum(iv["requests"] for iv in intervals) > 0
    return lines[0], spares[0]


@dataclass(frozen=True)
class StoppedTakingWrites:
    """A 4 s run whose results.db (and its WAL) became immutable once it had stored an
    interval: the lab's one line on stderr and the spare it kept the run in."""

    db: Path
    line: str
    spare: Path


@pytest.fixture(scope="module")
def stopped_taking_writes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppedTakingWrites]:
    """The run both tests below read (made once): what the lab said, and the spare; the
    files are made writable again afterwards, or pytest could not remove them."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    tmp = tmp_path_factory.mktemp("stopped-taking-writes")
    db = tmp / "results.db"
    made: list[Path] = []

    def spoil(db: Path) -> None:
        for path in (db, Path(f"{db}-wal")):
            res = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                pytest.skip(f"chattr +i is not permitted here: {res.stderr.strip()}")
            made.append(path)

    try:
        with leaves_no_processes("lab run into a database that stops taking writes"):
            line, spare = _run_and_spoil(tmp, spoil)
        yield StoppedTakingWrites(db, line, spare)
    finally:
        for path in made:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


def test_a_database_that_stops_taking_writes_mid_run_keeps_the_run(
        stopped_taking_writes: StoppedTakingWrites) -> None:
    line = stopped_taking_writes.line
    assert line.startswith(f"lab: {stopped_taking_writes.db}: cannot write the results database: "), line


def test_the_run_left_running_in_a_database_that_stopped_taking_writes_points_to_its_copy(
        stopped_taking_writes: StoppedTakingWrites) -> None:
    db, spare = stopped_taking_writes.db, stopped_taking_writes.spare
    for path in (db, Path(f"{db}-wal")):  # the disk has room again, the file is writable
        subprocess.run(["chattr", "-i", str(path)], check=True)
    expected = f"kept in {spare.name}: results.db stopped taking writes"
    # Read-only commands show it so; the next lab that writes stores it so.
    shown = json.loads(lab_in_process("show", "1", "--db", str(db), "--format", "json").stdout)["run"]
    assert (shown["status"], shown["reason"]) == ("failed", expected), shown
    res = lab_in_process("runs", "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    with open_results(db):
        pass
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT status, reason FROM runs WHERE id = 1").fetchone()
    assert stored == ("failed", expected)
    assert "killed" not in res.stdout


def test_a_database_deleted_mid_run_keeps_the_run(tmp_path: Path) -> None:
    line, _ = _run_and_spoil(tmp_path, Path.unlink)
    assert line.startswith(f"lab: {tmp_path / 'results.db'}: the results database was deleted while "
                           "the lab wrote to it; the default run: all of it is kept in "), line


def test_a_database_deleted_during_the_second_variant_keeps_the_first_too(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    body = BASE.replace('duration = "1s"', 'duration = "3s"') + textwrap.dedent("""
        [[variants]]
        name = "first"
        [[variants]]
        name = "second"
        """)
    lines = _lab_run_spoiled(write_experiment(tmp_path, body, "two"), db, Path.unlink, run_id=2)
    assert len(lines) == 2, lines
    err = "\n".join(lines)
    kept = {}
    for line, variant in zip(lines, ("first", "second"), strict=True):
        found = re.search(rf"deleted while the lab wrote to it; the {variant} run: all of it is kept in "
                          r"(\S+) \(lab show", line)
        assert found, err
        kept[variant] = Path(found.group(1))
    for variant, spare in kept.items():
        with Store(spare, readonly=True) as store:
            (run,) = store.list_runs()
            assert (run.variant, run.status) == (variant, "completed")
            assert len(store.intervals(run.id)) >= 3
            assert run.summary is not None
            assert run.summary.requests == sum(iv.requests for iv in store.intervals(run.id)) > 0


DAMAGED_COMMANDS = [("runs",), ("show", "1"), ("compare", "1", "2"), ("sweep",),
                    ("export", "1"), ("report", "1", "-o", "-"), ("run", "{exp}", "-q")]


@pytest.mark.parametrize("command", DAMAGED_COMMANDS, ids=lambda c: c[0])
def test_a_damaged_database_is_one_line_everywhere(tmp_path: Path, command: tuple[str, ...]) -> None:
    db = _stored_db(tmp_path)
    _damage(db, None)
    exp, marker = _experiment_with_marker(tmp_path)
    res = lab_in_process(*(part.format(exp=exp) for part in command), "--db", str(db), cwd=tmp_path)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{db}: "), line
    assert "malformed" in line and f"lab doctor --db {db}" in line, line
    assert not marker.exists()


def test_show_and_report_of_a_run_whose_series_is_damaged(tmp_path: Path) -> None:
    db = _stored_db(tmp_path)
    _damage(db, "intervals")
    assert lab_in_process("runs", "--db", str(db)).returncode == 0  # what is sound still reads
    for command in (("show", "1"), ("report", "1", "-o", "-")):
        res = lab_in_process(*command, "--db", str(db))
        line = one_line_error(res.returncode, res.stdout, res.stderr)
        assert line.startswith(f"{db}: cannot read the results database: database disk image is "
                               "malformed"), line


def test_doctor_checks_the_whole_file(tmp_path: Path) -> None:
    db = _stored_db(tmp_path)
    res = run_lab("doctor", "--db", str(db), "--format", "json")
    check = next(c for c in json.loads(res.stdout)["checks"] if c["name"] == "results database")
    assert check["status"] == "ok", check
    _damage(db, "intervals")
    res = run_lab("doctor", "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    check = next(c for c in json.loads(res.stdout)["checks"] if c["name"] == "results database")
    assert check["status"] == "warn", check
    assert check["value"].startswith(f"{db.resolve()}: damaged: "), check
    assert ".recover" in check["advice"]


def test_run_checks_the_whole_file_before_it_starts(tmp_path: Path) -> None:
    db = _stored_db(tmp_path)
    _damage(db, "idx_intervals_run_id")  # opening and listing runs never read this index
    assert lab_in_process("runs", "--db", str(db)).returncode == 0
    exp, marker = _experiment_with_marker(tmp_path)
    res = run_lab("run", str(exp), "--db", str(db), "-q", cwd=tmp_path, timeout=60)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{db}: "), line
    assert "damaged" in line and f"lab doctor --db {db}" in line, line
    assert not marker.exists()


async def test_the_tui_says_where_a_run_went_when_the_database_stops_taking_writes(
        tmp_path: Path, experiments_dir: Path, immutable: Callable[[Path], None]) -> None:
    import asyncio

    from lab.tui.app import LabApp
    from lab.tui.screens.live import LiveScreen
    from tests.tui.conftest import FakeEngine

    db = tmp_path / "results.db"
    gate = asyncio.Event()
    engine = FakeEngine(seconds=6, gate=gate)
    app = LabApp(db, experiments_dir, run_plan_fn=engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("r")
        live = app.screen
        assert isinstance(live, LiveScreen)
        for _ in range(200):  # the first half of the run is stored
            await pilot.pause(0.02)
            if live.snapshot.t:
                break
        for path in (db, Path(f"{db}-wal")):
            immutable(path)
        gate.set()
        await pilot.press("s")
        await live.workers.wait_for_complete()
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
    spares = _spares(tmp_path)
    assert len(spares) == 1
    assert any(m.startswith(f"{db}: cannot write the results database: ")
               and f"all of it is kept in {spares[0]}" in m for m in messages), messages
    with Store(spares[0], readonly=True) as store:
        (run,) = store.list_runs()
        assert len(store.intervals(run.id)) == 6 and run.status == "aborted"


def _spoiled(tmp_path: Path, how: str) -> Path:
    """A results database spoiled ``how``, alone in a folder of its own."""
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / f"{how}.db"
    if how == "garbage":
        db.write_bytes(b"not a database at all\n" * 200)
    else:
        stored = _stored_db(tmp_path)
        if how == "damaged":
            _damage(stored, None)
            db.write_bytes(stored.read_bytes())
        else:  # truncated: a copy cut short, as by a full disk or an interrupted copy
            db.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    return db


@pytest.mark.parametrize("how", ["garbage", "truncated", "damaged"])
@pytest.mark.parametrize("command", ["tui", "web", "run", "runs"])
def test_a_spoiled_database_is_refused_before_the_lab_starts_and_nothing_is_left_beside_it(
        tmp_path: Path, command: str, how: str) -> None:
    db = _spoiled(tmp_path, how)
    before = db.read_bytes()
    exp, marker = _experiment_with_marker(tmp_path)
    with socket.socket() as probe:  # a port nobody listens on, were the web lab to start
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    args = {"tui": ("tui",), "web": ("web", "--port", port), "run": ("run", str(exp), "-q"),
            "runs": ("runs",)}[command]
    # The UIs as processes of their own (were one to start); the rest in this process.
    lab = run_lab if command in ("tui", "web") else lab_in_process
    res = lab(*args, "--db", str(db), cwd=tmp_path)
    line = one_line_error(res.returncode, res.stdout, res.stderr)
    assert line.startswith(f"{db}: cannot open the results database: "), line
    assert ("not a SQLite file" if how == "garbage" else f"lab doctor --db {db}") in line, line
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]
    assert db.read_bytes() == before
    assert not marker.exists()


def _open_and_report(path: str, answer: object) -> None:
    try:
        with Store(path):
            pass
        answer.put("")  # type: ignore[attr-defined]
    except Exception as exc:  # the failure is the finding; send it back as text
        answer.put(str(exc))  # type: ignore[attr-defined]


def test_two_labs_opening_one_new_database_at_once_both_get_it(tmp_path: Path) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite says "locked" at once
    # (without the busy timeout) while the other lab holds any lock: 40 pairs failed every
    # time before the lab waited that out (~1.6 s).
    import multiprocessing

    context = multiprocessing.get_context("fork")
    failures = []
    for i in range(40):
        path = str(tmp_path / f"new{i}.db")
        answers = context.Queue()
        procs = [context.Process(target=_open_and_report, args=(path, answers)) for _ in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        failures += [text for text in (answers.get(timeout=5) for _ in procs) if text]
    assert failures == []
