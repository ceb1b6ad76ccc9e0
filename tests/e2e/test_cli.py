"""The command line as a user sees it: real ``python -m lab`` runs (what they stored is read
back, and most bad input refused, through ``lab.cli.main`` in this process), real SQLite files.

Bad input is one line on stderr and exit code 2, and creates no results database; good
runs print data on stdout and progress on stderr; stored runs can be listed, shown and
compared with the same figures the run printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from lab import __version__
from lab.cli import cli
from lab.store import Store
from tests.conftest import REPO, _lab_children, lab_in_process, one_line_error, run_lab, write_experiment
from tests.unit.test_cli import COMMANDS

BASE = """
[experiment]
title = "cli test"
[target]
app = "targets.testing:app"
[load]
vus = 2
duration = "1s"
timeout = "2s"
[[load.requests]]
path = "/fast"
"""

TWO_VARIANTS = BASE + """
[[variants]]
name = "alpha"
[[variants]]
name = "beta"
load = { vus = 3 }
"""


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """Assert ``res`` is a bad-input failure reported as one line; return that line."""
    return one_line_error(res.returncode, res.stdout, res.stderr)


def _bad_run(tmp_path: Path, *args: str, lab: Callable[..., subprocess.CompletedProcess[str]] = lab_in_process
             ) -> str:
    """``lab ARGS --db tmp/results.db`` from tmp_path (through ``lab.cli.main`` in this
    process unless ``lab`` says otherwise); must fail without creating a database."""
    db = tmp_path / "out" / "results.db"
    res = lab("run", *args, "--db", str(db), cwd=tmp_path)
    line = _one_line_error(res)
    assert not db.exists()
    assert not db.parent.exists()
    assert not (tmp_path / "results.db").exists()
    return line


# ------------------------------------------------------------------------ bad input


def test_missing_file(tmp_path: Path) -> None:
    line = _bad_run(tmp_path, "nope.toml", lab=run_lab)  # the one bad run through python -m lab
    assert line.startswith("nope.toml: ")
    assert "no such experiment file" in line


def test_unknown_experiment_name_lists_known_ones(tmp_path: Path) -> None:
    exp_dir = tmp_path / "exps"
    exp_dir.mkdir()
    write_experiment(exp_dir, BASE, name="caching")
    write_experiment(exp_dir, BASE, name="workers")
    line = _bad_run(tmp_path, "cachin", "--experiments", str(exp_dir))
    assert line.startswith("cachin: ")
    assert "known experiments: caching, workers" in line


def test_unknown_experiment_name_with_no_experiments(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _bad_run(tmp_path, "caching", "--experiments", str(empty))
    assert "caching" in line and "no experiments found" in line


def test_toml_syntax_error_has_line_number(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE.replace('vus = 2', 'vus = = 2'))
    line = _bad_run(tmp_path, str(exp))
    # BASE starts with a blank line, so `vus` is on line 7.
    assert line.startswith(f"{exp}:7: ")
    assert "invalid TOML" in line


# (toml change, expected field, words the message must contain)
SPEC_ERRORS = {
    "unknown_field": (('timeout = "2s"', 'timeout = "2s"\nbogus = 1'), "load.bogus",
                      ["unknown field", "allowed:", "vus"]),
    "wrong_type": (("vus = 2", 'vus = "many"'), "load.vus", ["integer", "'many'"]),
    "zero_duration": (('duration = "1s"', 'duration = "0s"'), "load.duration", ["> 0"]),
    "negative_duration": (('duration = "1s"', "duration = -1"), "load.duration", ["> 0", "-1"]),
    "unknown_distribution": (
        ('path = "/fast"',
         'path = "/status/{code}"\nparams.code = { distribution = "gaussian" }'),
        "load.requests[0].params.code.distribution",
        ["'gaussian'", "allowed: zipf, uniform, sequence, choice"],
    ),
}


@pytest.mark.parametrize("case", list(SPEC_ERRORS))
def test_invalid_spec_names_file_line_and_field(tmp_path: Path, case: str) -> None:
    (old, new), field, words = SPEC_ERRORS[case]
    assert old in BASE
    body = BASE.replace(old, new)
    exp = write_experiment(tmp_path, body)
    line = _bad_run(tmp_path, str(exp))
    match = re.match(rf"^{re.escape(str(exp))}:(\d+): {re.escape(field)}: (.*)$", line)
    assert match, line
    # The line number points at the offending key.
    key = field.rsplit(".", 1)[-1]
    assert key in body.splitlines()[int(match.group(1)) - 1], line
    for word in words:
        assert word in match.group(2), line


def test_target_app_that_cannot_be_imported(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE.replace("targets.testing:app", "targets.nope:app"))
    line = _bad_run(tmp_path, str(exp))
    match = re.match(rf"^{re.escape(str(exp))}:(\d+): target\.app: ", line)
    assert match, line
    assert BASE.splitlines()[int(match.group(1)) - 1].startswith("app = "), line
    assert "targets.nope" in line and "No module named" in line


def test_variant_overriding_unknown_field(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, TWO_VARIANTS.replace("load = { vus = 3 }",
                                                          "load = { vuz = 3 }"))
    line = _bad_run(tmp_path, str(exp))
    assert re.match(rf"^{re.escape(str(exp))}:\d+: variants\[1\]\.load\.vuz: unknown field", line), line


def test_unknown_variant_lists_known_ones(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, TWO_VARIANTS)
    line = _bad_run(tmp_path, str(exp), "--variant", "nosuch")
    assert line.startswith(f"{exp}: --variant: ")
    assert "'nosuch'" in line and "alpha, beta" in line


def test_vus_option_with_open_model(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE.replace("vus = 2", 'model = "open"\nrate = 10'))
    line = _bad_run(tmp_path, str(exp), "--vus", "3")
    assert line.startswith(f"{exp}: ")
    # The field the check blames, not a doubled 'load.load'.
    assert "load.vus: 'vus' is for the closed model" in line
    assert "load.load" not in line


@pytest.mark.parametrize("option,value,field", [
    ("--duration", "bogus", "--duration"),
    ("--duration", "0", "--duration"),
    ("--warmup", "bogus", "--warmup"),
])
def test_bad_duration_options(tmp_path: Path, option: str, value: str, field: str) -> None:
    exp = write_experiment(tmp_path, BASE)
    # A valid --duration alongside must not take the blame for a bad --warmup.
    extra = ["--duration", "2s"] if option == "--warmup" else []
    line = _bad_run(tmp_path, str(exp), *extra, option, value)
    assert line.startswith(f"{exp}: {field}: ")
    assert repr(value) in line


def test_warmup_longer_than_run(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE)
    line = _bad_run(tmp_path, str(exp), "--warmup", "5s")
    assert "load.warmup: must be shorter than the run" in line


@pytest.mark.parametrize("args", [
    ("x.toml", "--bogus"),
    ("x.toml", "--vus", "0"),
    ("x.toml", "--format", "xml"),
    (),
])
def test_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    line = _bad_run(tmp_path, *args)
    assert line.startswith("lab run: ")
    assert "lab run --help" in line


def test_unreadable_database_is_one_line(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE)
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database\n")
    for args in (("runs",), ("show", "1"), ("compare", "1", "2"), ("run", str(exp))):
        line = _one_line_error(lab_in_process(*args, "--db", str(junk), cwd=tmp_path))
        assert line.startswith(f"{junk}: "), line
        assert "not a database" in line
    assert junk.read_text() == "this is not a database\n"
    assert not (tmp_path / "results.db").exists()


def test_database_under_a_file_is_one_line(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE)
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line_error(lab_in_process("run", str(exp), "--db", str(blocker / "x.db"), "-q",
                                   cwd=tmp_path))
    assert line.startswith(f"{blocker / 'x.db'}: ")


def test_database_that_is_a_directory(tmp_path: Path) -> None:
    line = _one_line_error(lab_in_process("runs", "--db", str(tmp_path), cwd=tmp_path))
    assert "is a directory" in line


# ---------------------------------------------------------- runs, stored and compared


@dataclass
class Session:
    db: Path
    table: subprocess.CompletedProcess[str]
    """``lab run tabled`` (2 variants x 1 s) as a table."""
    json_run: subprocess.CompletedProcess[str]
    """``lab run jsoned --format json``: alpha 2 s (two rows for ``lab show``), beta 1 s."""
    doc: dict[str, Any]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Two experiments with two variants each, run once into one database for the module."""
    tmp = tmp_path_factory.mktemp("cli")
    db = tmp / "results.db"
    tabled = write_experiment(tmp, TWO_VARIANTS, name="tabled")
    jsoned = write_experiment(tmp, TWO_VARIANTS.replace('duration = "1s"', 'duration = "2s"')
                              .replace("load = { vus = 3 }", 'load = { vus = 3, duration = "1s" }'),
                              name="jsoned")
    # Both at once into one database: two runs at the same time must not fail on a lock.
    procs = [subprocess.Popen([sys.executable, "-m", "lab", "run", str(path), "--db", str(db), *extra],
                              cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for path, extra in ((tabled, ["--progress"]), (jsoned, ["--format", "json"]))]
    try:
        outputs = [p.communicate(timeout=60) for p in procs]
        table, json_run = (subprocess.CompletedProcess(p.args, p.returncode, out, err)
                           for p, (out, err) in zip(procs, outputs, strict=True))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert table.returncode == 0, f"lab run tabled: {table.stderr}"
    assert json_run.returncode == 0, f"lab run jsoned: {json_run.stderr}"
    deadline = time.monotonic() + 5
    while _lab_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _lab_children(), "lab run left processes behind"
    return Session(db, table, json_run, json.loads(json_run.stdout))


def test_run_prints_table_and_progress(session: Session) -> None:
    out, err = session.table.stdout, session.table.stderr
    assert "Traceback" not in err
    main_table = out.split("reported by the target")[0]
    rows = [line for line in main_table.splitlines() if re.match(r"^\s*\d+ (alpha|beta) ", line)]
    assert [line.split()[1] for line in rows] == ["alpha", "beta"]
    assert all("completed" in line for line in rows)
    # The second run's change against the first: a line of signed percents.
    assert re.search(r"^\s+(gen-bound\s+)?[+−±][\d.,]*%", out, re.MULTILINE), out
    assert "change vs run" in out
    # Data on stdout, progress on stderr.
    assert err.startswith("cli test\n")
    for variant in ("alpha", "beta"):
        assert re.search(rf"^\[{variant}\] .*req/s", err, re.MULTILINE), err
        assert f"[{variant}] completed:" in err
        assert f"[{variant}]" not in out
    # The two labs ran at the same time (into one database, without a lock error).
    with Store(session.db, readonly=True) as store:
        runs = store.list_runs()
    spans = {name: (min(r.started_at_unix for r in runs if r.experiment == name),
                    max(r.ended_at_unix or 0.0 for r in runs if r.experiment == name))
             for name in ("tabled", "jsoned")}
    assert spans["tabled"][0] < spans["jsoned"][1] and spans["jsoned"][0] < spans["tabled"][1], spans


def test_run_json(session: Session) -> None:
    doc = session.doc
    assert doc["experiment"] == "jsoned"
    runs = doc["runs"]
    assert [r["variant"] for r in runs] == ["alpha", "beta"]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    for r in runs:
        assert r["summary"]["requests"] > 0
        assert r["summary"]["errors"] == 0
        assert r["summary"]["throughput_rps"] > 0
    # stderr is a pipe here, not a terminal: no progress unless asked for (--progress).
    assert session.json_run.stderr == ""


def test_runs_lists_them(session: Session) -> None:
    res = lab_in_process("runs", "--db", str(session.db))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    for name in ("tabled", "jsoned", "alpha", "beta"):
        assert name in res.stdout
    res = lab_in_process("runs", "--db", str(session.db), "--format", "json")
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)["runs"]
    ids = [r["id"] for r in session.doc["runs"]]
    assert set(ids) <= {r["id"] for r in listed}
    assert len(listed) == 4
    # Newest first (by start time: the two experiments ran at the same time).
    starts = [r["started_at"] for r in listed]
    assert starts == sorted(starts, reverse=True)


def test_runs_filters_by_experiment(session: Session) -> None:
    res = lab_in_process("runs", "--db", str(session.db), "--format", "json", "--experiment", "jsoned")
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)["runs"]
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in session.doc["runs"])
    assert {r["experiment"] for r in listed} == {"jsoned"}
    res = lab_in_process("runs", "--db", str(session.db), "--experiment", "jsoned", "--limit", "1")
    assert res.returncode == 0, res.stderr
    assert "jsoned" in res.stdout and "tabled" not in res.stdout
    assert "beta" in res.stdout and "alpha" not in res.stdout


def test_show_prints_per_second_rows(session: Session) -> None:
    run = session.doc["runs"][0]
    res = lab_in_process("show", str(run["id"]), "--db", str(session.db))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"run {run['id']} · jsoned / alpha" in out
    assert "completed" in out
    # One row per second: t = 0 and t = 1, with the VUs (2) before the target's gauges
    # (uptime s, fast total, in flight).
    series = out[out.index("t s "):]
    header = series.splitlines()[0].split()
    assert header[-7:] == ["VUs", "uptime", "s", "fast", "total", "in", "flight"], series
    rows = [line.split() for line in series.splitlines()[2:] if line.strip()]
    assert [row[0] for row in rows] == ["0", "1"], series
    assert all(row[-4] == "2" for row in rows), series

    res = lab_in_process("show", str(run["id"]), "--db", str(session.db), "--format", "json")
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["run"]["id"] == run["id"]
    assert shown["run"]["summary"] == run["summary"]
    intervals = shown["intervals"]
    assert [iv["t_s"] for iv in intervals] == [0.0, 1.0]
    assert sum(iv["requests"] for iv in intervals) == run["summary"]["requests"]


def test_compare_json_matches_run_json(session: Session) -> None:
    ids = [str(r["id"]) for r in session.doc["runs"]]
    res = lab_in_process("compare", *ids, "--db", str(session.db), "--format", "json")
    assert res.returncode == 0, res.stderr
    compared = json.loads(res.stdout)
    assert compared["experiment"] == "jsoned"
    for ran, cmp in zip(session.doc["runs"], compared["runs"], strict=True):
        assert cmp["id"] == ran["id"] and cmp["variant"] == ran["variant"]
        for key in ("throughput_rps", "requests"):
            assert cmp["summary"][key] == ran["summary"][key]
        assert cmp["summary"]["latency_ms"]["p95"] == ran["summary"]["latency_ms"]["p95"]
        assert cmp["summary"] == ran["summary"]


def test_compare_table_is_the_run_table(session: Session) -> None:
    listed = json.loads(lab_in_process("runs", "--db", str(session.db), "--format", "json",
                                "--experiment", "tabled").stdout)["runs"]
    ids = sorted(str(r["id"]) for r in listed)
    res = lab_in_process("compare", *ids, "--db", str(session.db))
    assert res.returncode == 0, res.stderr
    assert res.stdout == session.table.stdout


def test_compare_in_reverse_uses_the_first_as_baseline(session: Session) -> None:
    ids = [str(r["id"]) for r in reversed(session.doc["runs"])]
    res = lab_in_process("compare", *ids, "--db", str(session.db))
    assert res.returncode == 0, res.stderr
    assert f"change vs run {ids[0]} (beta)" in res.stdout


def test_missing_run_ids(session: Session) -> None:
    line = _one_line_error(lab_in_process("show", "999", "--db", str(session.db)))
    assert "999" in line and line.startswith(f"{session.db}: ")
    first = str(session.doc["runs"][0]["id"])
    line = _one_line_error(lab_in_process("compare", first, "999", "--db", str(session.db)))
    assert "999" in line
    line = _one_line_error(lab_in_process("show", "abc", "--db", str(session.db)))
    assert "'abc'" in line


def test_missing_database(tmp_path: Path) -> None:
    in_missing_dir = tmp_path / "nonexistent" / "dir" / "x.db"
    for cmd, db in ((("runs",), in_missing_dir), (("runs",), tmp_path / "x.db"),
                    (("show", "1"), in_missing_dir), (("compare", "1", "2"), tmp_path / "x.db")):
        line = _one_line_error(lab_in_process(*cmd, "--db", str(db), cwd=tmp_path))
        assert line.startswith(f"{db}: ") and "no such results database" in line
        assert not db.exists()
        assert not db.parent.exists() or db.parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_run_refuses_a_database_in_a_missing_directory(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, TWO_VARIANTS)
    db = tmp_path / "nonexistent" / "x.db"
    line = _one_line_error(lab_in_process("run", str(exp), "--db", str(db)))
    assert "does not exist" in line
    assert not db.parent.exists()


def test_read_commands_never_change_a_database(tmp_path: Path, session: Session) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table notes (body text)")
    before = other.read_bytes()
    line = _one_line_error(lab_in_process("runs", "--db", str(other)))
    assert "not a Scalability Lab results database" in line
    assert other.read_bytes() == before
    line = _one_line_error(lab_in_process("run", str(write_experiment(tmp_path, TWO_VARIANTS)),
                                   "--db", str(other)))
    assert "not a Scalability Lab results database" in line
    # A results.db on a read-only copy can still be read.
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    copy = ro_dir / "results.db"
    with sqlite3.connect(session.db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    copy.chmod(0o444)
    copied = copy.read_bytes()
    res = lab_in_process("runs", "--db", str(copy), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["runs"]) == len(json.loads(
        lab_in_process("runs", "--db", str(session.db), "--format", "json").stdout)["runs"])
    assert copy.read_bytes() == copied  # (SQLite may add its -wal/-shm side files)


def test_one_variant_quietly_into_lab_db(tmp_path: Path) -> None:
    """``--variant`` runs only that variant, ``--quiet`` silences stderr, and ``LAB_DB``
    (no ``--db``) says where the database goes."""
    exp = write_experiment(tmp_path, TWO_VARIANTS)
    db = tmp_path / "elsewhere" / "lab.db"
    db.parent.mkdir()
    env = {"LAB_DB": str(db)}
    res = run_lab("run", str(exp), "--variant", "beta", "--quiet", "--format", "json",
                  cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    runs = json.loads(res.stdout)["runs"]
    assert [(r["variant"], r["status"]) for r in runs] == [("beta", "completed")]
    assert runs[0]["config"]["load"]["vus"] == 3
    assert db.exists()
    assert not (tmp_path / "results.db").exists()
    listed = lab_in_process("runs", "--format", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["variant"]) for r in json.loads(listed.stdout)["runs"]] == [
        (runs[0]["id"], "beta")]
    # --db wins over LAB_DB.
    other = tmp_path / "other.db"
    line = _one_line_error(lab_in_process("runs", "--db", str(other), cwd=tmp_path, env=env))
    assert line.startswith(f"{other}: ")


# --------------------------------------------------------------------- help, version


def _first_help_line(command: click.Command) -> str:
    return " ".join((command.help or "").strip().splitlines()[0].split())


def test_top_level_help_lists_every_command() -> None:
    assert {"run", "runs", "show", "compare"} <= set(COMMANDS)
    res = run_lab("--help")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("Usage: lab ")
    assert "Scalability Lab" in res.stdout
    commands = res.stdout[res.stdout.index("Commands:"):]
    for name in COMMANDS:
        assert re.search(rf"^  {name}  +\S", commands, re.MULTILINE), (name, res.stdout)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    assert isinstance(cli, click.Group)
    command = cli.commands[name]
    first = _first_help_line(command)
    assert len(first) > 10, f"lab {name} has no description"
    res = lab_in_process(name, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith(f"Usage: lab {name} ")
    assert first in " ".join(res.stdout.split())
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.opts[-1] in res.stdout
    if any(p.name == "db_path" for p in command.params):
        assert "LAB_DB" in res.stdout  # where the database comes from, when not --db


def test_version() -> None:
    res = subprocess.run([sys.executable, "-m", "lab", "--version"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(r"lab, version \d+\.\d+\S*\n", res.stdout), res.stdout
    assert __version__ in res.stdout


def test_refuses_more_vus_than_open_files_allow(tmp_path: Path) -> None:
    import resource

    exp = write_experiment(tmp_path, BASE + """
[[variants]]
name = "many"
load = { vus = 500 }
""")

    def low_limit() -> None:  # runs in the child: a hard limit the lab cannot raise
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    db = tmp_path / "r.db"
    res = subprocess.run([sys.executable, "-m", "lab", "run", str(exp), "--db", str(db),
                          "--workers", "1"],
                         capture_output=True, text=True, preexec_fn=low_limit, check=False,
                         timeout=60)
    line = _one_line_error(res)
    assert "open-file limit is 256" in line and "564 open files" in line, line
    assert not db.exists()


def test_soft_open_file_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard open-file limit is {hard}")
    # 300 VUs on one generator worker need 364 open files: more than a soft limit of 256.
    exp = write_experiment(tmp_path, BASE.replace("vus = 2", "vus = 300"))

    def low_soft_limit() -> None:  # runs in the child: the hard limit stays
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    res = subprocess.run([sys.executable, "-m", "lab", "run", str(exp), "--db", str(tmp_path / "r.db"),
                          "--workers", "1", "--format", "json"], capture_output=True, text=True,
                         preexec_fn=low_soft_limit, check=False, timeout=60, cwd=REPO)
    assert res.returncode == 0, res.stderr
    (run,) = json.loads(res.stdout)["runs"]
    # The generator worker inherited the raised limit: not one request failed for want of a
    # descriptor (those count as generator errors).
    assert run["status"] == "completed" and run["summary"]["errors"] == 0, run["summary"]
    assert run["summary"]["ok"] > 0


def test_duration_shrinks_a_warmup_longer_than_half_of_it(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, BASE.replace('duration = "1s"', 'duration = "10s"\nwarmup = "6s"') + """
[[variants]]
name = "long-warmup"
[[variants]]
name = "short-warmup"
load = { warmup = "1s" }
""")
    res = run_lab("run", str(exp), "--duration", "3s", "--db", str(tmp_path / "r.db"), "--format", "json")
    assert res.returncode == 0, res.stderr
    runs = {r["variant"]: r for r in json.loads(res.stdout)["runs"]}
    # 6 s of warm-up is more than half of 3 s: it shrinks in proportion, 6 × 3 / 10 = 1.8 s
    # (rounded up to whole seconds: 1 s measured). 1 s is not: it stays.
    assert runs["long-warmup"]["config"]["load"]["warmup"] == pytest.approx(1.8)
    assert runs["short-warmup"]["config"]["load"]["warmup"] == 1.0
    for run in runs.values():
        assert run["config"]["load"]["duration"] == 3.0
        assert run["status"] == "completed" and run["summary"]["window_s"] == pytest.approx(
            2.0 if run["variant"] == "short-warmup" else 1.0, abs=0.25), run["summary"]
