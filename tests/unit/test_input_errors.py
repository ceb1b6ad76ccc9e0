"""Bad input found by a fresh-user tryout: every case is one line on stderr naming the
file, field (or option) and what is allowed, exit code 2, no traceback, nothing stored.

The cases go through ``lab.cli.main`` in this process (the console script's own entry
point, so the same error handling); tests/e2e/test_input_errors.py runs one case per
family through ``python -m lab``. Nothing here starts a target or sends a request.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.cli import main
from lab.plan import check_plans, plan_runs, usable_cores
from lab.spec import SpecError, load_experiment, module_problem
from lab.store import Store
from lab.thresholds import parse_threshold
from tests.conftest import one_line_error, write_experiment
from tests.synthetic import ONE_SECOND as BASE
from tests.synthetic import T0, record, summary_of, synthetic_events

MAX_ID = 2**63 - 1



@dataclass
class Result:
    code: int
    out: str
    err: str

    def one_line_error(self) -> str:
        """Assert a bad-input failure reported as one line; return the line."""
        return one_line_error(self.code, self.out, self.err)


Lab = Callable[..., Result]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Lab:
    """``lab ARGS`` through the console script's ``main``, in tmp_path; returns its result."""
    monkeypatch.delenv("LAB_DB", raising=False)
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> Result:
        previous = signal.getsignal(signal.SIGTERM)  # main installs its own handler
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            signal.signal(signal.SIGTERM, previous)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[Path]:
    """A results.db holding two synthetic runs (ids 1 and 2), written by the StoreRecorder."""
    path = tmp_path / "stored.db"
    plan = plan_runs(load_experiment(write_experiment(tmp_path, BASE, "stored")))[0]
    with Store(path) as store:
        for i in range(2):
            events = synthetic_events(plan, f"run{i}", 500, 3.0, 3, T0 + 60 * i)
            record(store, events, "completed", None, T0 + 60 * i + 4,
                   summary_of(events, 0, 0.5, 50_000_000, None))
    yield path


def _run_count(db: Path) -> int:
    with Store(db, readonly=True) as store:
        return len(store.list_runs())


# ------------------------------------------------------------------ 6: run and sweep ids

ID_COMMANDS = [
    ("show", "{id}"), ("compare", "1", "{id}"), ("compare", "--baseline", "{id}", "1"),
    ("export", "{id}"), ("report", "{id}", "-o", "-"), ("sweep", "{id}"),
]


@pytest.mark.parametrize("command", ID_COMMANDS, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("bad", ["99999999999999999999", str(MAX_ID + 1), "0"])
def test_run_and_sweep_ids_out_of_range_are_one_line(lab: Lab, stored: Path, command: tuple[str, ...],
                                                     bad: str) -> None:
    args = [part.format(id=bad) for part in command]
    line = lab(*args, "--db", str(stored)).one_line_error()
    what = "sweep id" if command[0] == "sweep" else "run id"
    assert line.startswith(f"lab {command[0]}: Invalid value for "), line
    assert f"{what} must be between 1 and {MAX_ID}, got {bad}" in line
    assert f"(see 'lab {command[0]} --help')" in line
    assert _run_count(stored) == 2


@pytest.mark.parametrize("command", ID_COMMANDS, ids=lambda c: "-".join(c))
def test_largest_id_is_looked_up_and_not_found(lab: Lab, stored: Path, command: tuple[str, ...]) -> None:
    args = [part.format(id=MAX_ID) for part in command]
    line = lab(*args, "--db", str(stored)).one_line_error()
    what = "sweep" if command[0] == "sweep" else "run"
    assert line == f"{stored}: no {what} with id {MAX_ID}"


def test_an_id_that_is_not_a_number(lab: Lab, stored: Path) -> None:
    line = lab("show", "abc", "--db", str(stored)).one_line_error()
    assert f"run id must be a whole number between 1 and {MAX_ID}, got 'abc'" in line
    # A pasted wall of digits is cut short, not echoed back in full.
    line = lab("show", "9" * 5000, "--db", str(stored)).one_line_error()
    assert len(line) < 200 and "run id must be" in line


def test_good_ids_still_work(lab: Lab, stored: Path) -> None:
    res = lab("compare", "--baseline", "1", "2", "--db", str(stored), "--format", "json")
    assert res.code == 0, res.err
    assert [r["id"] for r in json.loads(res.out)["runs"]] == [1, 2]


def test_fail_on_regression_without_a_baseline(lab: Lab, stored: Path) -> None:
    line = lab("compare", "1", "2", "--fail-on-regression", "--db", str(stored)).one_line_error()
    assert line.startswith("lab compare: --fail-on-regression needs --baseline RUN_ID"), line


# ----------------------------------------------- 9: cores and app modules, before any run


def _bad_run(lab: Lab, tmp_path: Path, body: str, *args: str) -> str:
    """``lab run`` of ``body``: one line, exit 2, and no results database created."""
    path = write_experiment(tmp_path, body)
    db = tmp_path / "results.db"
    line = lab("run", str(path), "--db", str(db), *args).one_line_error()
    assert not db.exists()
    return line


def _line_of(body: str, needle: str) -> int:
    return next(i for i, text in enumerate(body.splitlines(), 1) if needle in text)


def test_variant_asking_for_more_cores_than_usable(lab: Lab, tmp_path: Path) -> None:
    cores = usable_cores()
    assert cores == len(os.sched_getaffinity(0))
    body = BASE + f'[[variants]]\nname = "one"\n[[variants]]\nname = "many"\ntarget.cpus = {cores + 1}\n'
    line = _bad_run(lab, tmp_path, body)
    assert line == (f"{tmp_path / 'exp.toml'}:{_line_of(body, 'target.cpus')}: variants[1].target.cpus: "
                    f"{cores + 1} cores asked, this machine has {cores} usable")
    # Leaving that variant out with --variant leaves nothing to complain about.
    exp = load_experiment(tmp_path / "exp.toml")
    check_plans(exp, plan_runs(exp, ["one"]))


def test_target_and_sweep_asking_for_more_cores_than_usable(lab: Lab, tmp_path: Path) -> None:
    cores = usable_cores()
    body = BASE.replace('app = "targets.testing:app"', f'app = "targets.testing:app"\ncpus = {cores + 1}')
    line = _bad_run(lab, tmp_path, body)
    assert line.endswith(f":{_line_of(body, 'cpus =')}: target.cpus: {cores + 1} cores asked, "
                         f"this machine has {cores} usable"), line
    body = BASE + f'[sweep]\nparameter = "target.cpus"\nlevels = [1, {cores + 1}]\n'
    line = _bad_run(lab, tmp_path, body)
    assert line.endswith(f": sweep.levels: level {cores + 1} asks for target.cpus = {cores + 1} cores, "
                         f"this machine has {cores} usable"), line


def test_service_app_that_cannot_be_imported(lab: Lab, tmp_path: Path) -> None:
    body = BASE + '[[services.apps]]\nname = "down"\napp = "targets.nope:app"\n'
    line = _bad_run(lab, tmp_path, body)
    assert line == (f"{tmp_path / 'exp.toml'}:{_line_of(body, 'targets.nope')}: services.apps[0].app: "
                    "cannot import 'targets.nope' (No module named 'targets.nope')")
    body = BASE + ('[[variants]]\nname = "a"\n[[variants]]\nname = "b"\nservices.apps = ['
                   '{ name = "down", app = "targets.testing:app" }, { name = "x", app = "nopkg.mod:app" }]\n')
    line = _bad_run(lab, tmp_path, body)
    assert line.endswith(": variants[1].services.apps[1].app: cannot import 'nopkg.mod' "
                         "(No module named 'nopkg')"), line


def test_target_app_that_cannot_be_imported_uses_the_same_wording(lab: Lab, tmp_path: Path) -> None:
    body = BASE.replace("targets.testing:app", "targets.testing.deeper:app")
    line = _bad_run(lab, tmp_path, body)
    assert line.endswith(": target.app: cannot import 'targets.testing.deeper' (No module named "
                         "'targets.testing.deeper'; 'targets.testing' is not a package)"), line


def test_modules_are_found_where_the_app_process_will_look_without_running_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A package whose import has a visible side effect: finding it must not trigger it.
    package = tmp_path / "apps" / "mine"
    package.mkdir(parents=True)
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "svc.py").write_text("raise SystemExit('never run by the check')\n")
    monkeypatch.chdir(tmp_path)
    assert module_problem("mine.svc:app", app_dir="apps") is None
    assert module_problem("mine.svc:app") == "No module named 'mine'"
    assert module_problem("mine.svc:app", env={"PYTHONPATH": str(tmp_path / "apps")}) is None
    assert module_problem("mine.other:app", app_dir="apps") == "No module named 'mine.other'"
    assert module_problem("json:loads") is None and module_problem("sys:path") is None
    assert not marker.exists()
    # The app_dir of [target] is where [[services.apps]] are looked up too, as the lab starts them.
    body = BASE.replace('app = "targets.testing:app"', 'app = "targets.testing:app"\napp_dir = "apps"')
    body += '[[services.apps]]\nname = "mine"\napp = "mine.svc:app"\n'
    exp = load_experiment(write_experiment(tmp_path, body))
    check_plans(exp, plan_runs(exp))
    assert not marker.exists()
    missing = load_experiment(write_experiment(tmp_path, body.replace('app_dir = "apps"\n', ""), "other"))
    with pytest.raises(SpecError) as err:
        check_plans(missing, plan_runs(missing))
    assert err.value.field == "services.apps[0].app"


def test_app_dir_that_does_not_exist(lab: Lab, tmp_path: Path) -> None:
    body = BASE.replace('app = "targets.testing:app"', 'app = "targets.testing:app"\napp_dir = "nowhere"')
    line = _bad_run(lab, tmp_path, body)
    assert line.endswith(f":{_line_of(body, 'app_dir')}: target.app_dir: no such directory: 'nowhere'"), line


# --------------------------------------------------------------- 12c: durations up to 24 h


@pytest.mark.parametrize(("args", "message"), [
    (("--duration", "100000h"), "--duration: must be at most 24h (got '100000h')"),
    (("--duration", "25h"), "--duration: must be at most 24h (got '25h')"),
    (("--warmup", "100000h"), "--warmup: must be at most 24h (got '100000h')"),
    (("--warmup", "-1s"), "--warmup: must be >= 0 (got '-1s')"),
])
def test_duration_options_are_capped(lab: Lab, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    line = _bad_run(lab, tmp_path, BASE, *args)
    assert line == f"{tmp_path / 'exp.toml'}: {message}"


def test_24h_is_still_accepted(tmp_path: Path) -> None:
    body = BASE.replace('duration = "1s"', 'duration = "24h"\nwarmup = "1h"')
    assert load_experiment(write_experiment(tmp_path, body)).load.total_duration_s == 86400


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ('duration = "1s"', 'duration = "100000h"', "load.duration", "must be at most 24h (got '100000h')"),
    ('duration = "1s"', 'duration = "1s"\ntimeout = "25h"', "load.timeout",
     "must be at most 24h (got '25h')"),
    ('duration = "1s"', 'stages = [{ duration = "20h", target = 2 }, { duration = "20h", target = 2 }]',
     "load.stages", "add up to 40h; a run lasts at most 24h"),
    ("[[load.requests]]", '[sweep]\nparameter = "vus"\nlevels = [1, 2]\nduration = "48h"\n[[load.requests]]',
     "sweep.duration", "must be at most 24h (got '48h')"),
])
def test_durations_in_the_file_are_capped(tmp_path: Path, old: str, new: str, field: str,
                                          message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_experiment(write_experiment(tmp_path, BASE.replace(old, new)))
    assert (err.value.field, err.value.message) == (field, message)
    assert err.value.line is not None


# ------------------------------------------------- the README's limits

ZIPF = 'path = "/p/{id}"\nparams.id = { distribution = "zipf", n = %d }'
# (line of BASE changed, at the limit, one past it, the field, the message past it)
LIMITS = {
    "vus": ("vus = 1", "vus = 100000", "vus = 100001", "load.vus", "must be <= 100000 (got 100001)"),
    "rate": ("vus = 1", 'model = "open"\nrate = 1000000', 'model = "open"\nrate = 1000001', "load.rate",
             "must be <= 1000000 (got 1000001)"),
    "workers": ("vus = 1", "vus = 64\nworkers = 64", "vus = 65\nworkers = 65", "load.workers",
                "must be <= 64 (got 65)"),
    "zipf_n": ('path = "/fast"', ZIPF % 1_000_000, ZIPF % 1_000_001, "load.requests[0].params.id.n",
               "must be <= 1000000 (got 1000001)"),
}


@pytest.mark.parametrize("case", list(LIMITS))
def test_documented_limits_are_accepted_and_one_past_them_refused(lab: Lab, tmp_path: Path,
                                                                   case: str) -> None:
    # README: vus <= 100,000, rate <= 1,000,000 req/s, generator workers <= 64, Zipf n <=
    # 1,000,000, so that a typo cannot take the machine down.
    old, at, past, field, message = LIMITS[case]
    assert load_experiment(write_experiment(tmp_path, BASE.replace(old, at), "at")).name == "at"
    path = write_experiment(tmp_path, BASE.replace(old, past), "past")
    line = lab("run", str(path), "--db", str(tmp_path / "r.db")).one_line_error()
    assert line == f"{path}:{_line_of(path.read_text(), past.splitlines()[-1])}: {field}: {message}"
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--vus", "100001", "load.vus: must be <= 100000 (got 100001)"),
    ("--rate", "1000001", "load.rate: must be <= 1000000 (got 1000001.0)"),
    ("--workers", "65", "load.workers: must be <= 64 (got 65)"),
])
def test_documented_limits_hold_for_command_line_overrides(lab: Lab, tmp_path: Path, option: str,
                                                           value: str, message: str) -> None:
    body = BASE.replace("vus = 1", 'model = "open"\nrate = 1') if option == "--rate" else BASE
    line = _bad_run(lab, tmp_path, body, option, value)
    assert line.endswith(f"{message} (after command-line overrides)"), line


# ------------------------------------------------- numbers that are not finite

_ZIPF_S = 'path = "/p/{id}"\nparams.id = { distribution = "zipf", n = 10, s = %s }'
_CHOICE = 'path = "/p/{id}"\nparams.id = { distribution = "choice", values = ["a", "b"], weights = [1, %s] }'


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ("vus = 1", "vus = 1\nmax_rps = inf", "load.max_rps", "must be a finite number > 0 (got inf)"),
    # TOML reads a float too large for a double as inf.
    ("vus = 1", "vus = 1\nmax_rps = 1e400", "load.max_rps", "must be a finite number > 0 (got inf)"),
    ("vus = 1", "vus = 1\nmax_rps = nan", "load.max_rps", "must be a finite number > 0 (got nan)"),
    ("vus = 1", 'model = "open"\nrate = nan', "load.rate",
     "must be a finite number > 0 and <= 1000000 (got nan)"),
    ('duration = "1s"', 'stages = [{ duration = "1s", target = inf }]', "load.stages[0].target",
     "must be a finite number >= 0 (got inf)"),
    ('path = "/fast"', 'path = "/fast"\nweight = -inf', "load.requests[0].weight",
     "must be a finite number > 0 (got -inf)"),
    ('path = "/fast"', _ZIPF_S % "nan", "load.requests[0].params.id.s",
     "must be a finite number > 0 (got nan)"),
    ('path = "/fast"', _CHOICE % "inf", "load.requests[0].params.id.weights[1]",
     "must be a finite number (got inf)"),
])
def test_load_numbers_that_are_not_finite_are_one_line(lab: Lab, tmp_path: Path, old: str, new: str,
                                                       field: str, message: str) -> None:
    body = BASE.replace(old, new)
    line = _bad_run(lab, tmp_path, body)
    assert line == f"{tmp_path / 'exp.toml'}:{_line_of(body, new.splitlines()[-1])}: {field}: {message}"


def test_a_rate_of_inf_from_the_command_line_is_one_line(lab: Lab, tmp_path: Path) -> None:
    line = _bad_run(lab, tmp_path, BASE.replace("vus = 1", 'model = "open"\nrate = 1'), "--rate", "inf")
    assert line.endswith("load.rate: must be a finite number > 0 and <= 1000000 (got inf) "
                         "(after command-line overrides)"), line


# ------------------------------------------------- 12d: shares stay within 0-100 %


@pytest.mark.parametrize(("text", "shown"), [
    ("error_rate<150%", "150%"), ("error_rate<-1%", "-1%"), ("error_rate<5", "5 (= 500 %)"),
    ("cache_hit_ratio>1.5", "1.5 (= 150 %)"),
])
def test_share_thresholds_outside_0_to_100_percent(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_threshold(text)
    metric = text.split("<")[0].split(">")[0]
    assert str(err.value) == (f"{metric} is a share: the limit in {text!r} must be 0-100% or a "
                              f"fraction 0-1, got {shown}")


def test_share_thresholds_at_the_edges_and_negative_limits() -> None:
    assert parse_threshold("error_rate<100%").limit == 1.0
    assert parse_threshold("error_rate<=0%").limit == 0.0
    assert parse_threshold("cache_hit_ratio>0.9").limit == pytest.approx(0.9)
    with pytest.raises(ValueError, match=r"the limit in 'p95<-5ms' must be >= 0"):
        parse_threshold("p95<-5ms")


def test_share_thresholds_from_the_command_line_and_the_file(lab: Lab, tmp_path: Path,
                                                             stored: Path) -> None:
    line = _bad_run(lab, tmp_path, BASE, "--threshold", "error_rate<150%")
    assert line == ("--threshold: error_rate is a share: the limit in 'error_rate<150%' must be 0-100% "
                    "or a fraction 0-1, got 150%")
    body = BASE + '[thresholds]\nerror_rate = "<150%"\n'
    line = _bad_run(lab, tmp_path, body)
    assert line.startswith(f"{tmp_path / 'exp.toml'}:{_line_of(body, 'error_rate')}: thresholds.error_rate: "
                           "error_rate is a share"), line
    line = lab("compare", "1", "2", "--db", str(stored), "--threshold", "errors_pct<=101%").one_line_error()
    assert "must be 0-100% or a fraction 0-1, got 101%" in line


# ----------------------------------------------------- 12e: sweep ranges in plain words


@pytest.mark.parametrize(("levels", "field", "message"), [
    ("{start = 1, stop = 8, factor = 1}", "sweep.levels.factor", "must be > 1 (got 1)"),
    ("{start = 1, stop = 8, factor = 0}", "sweep.levels.factor", "must be > 1 (got 0)"),
    ("{start = 1, stop = 8, factor = -1}", "sweep.levels.factor", "must be > 1 (got -1)"),
    ('{start = 1, stop = 8, factor = "x"}', "sweep.levels.factor", "must be a number (got 'x')"),
    ("{start = 1, stop = 8, factor = inf}", "sweep.levels.factor", "must be a finite number > 1 (got inf)"),
    ("{start = 1, stop = 8, factor = nan}", "sweep.levels.factor", "must be a finite number > 1 (got nan)"),
    ("{start = 1, stop = 8, step = 0}", "sweep.levels.step", "must be > 0 (got 0)"),
    ("{start = 0, stop = 8, step = 1}", "sweep.levels.start", "must be > 0 (got 0)"),
    ("{start = 8, stop = 1, step = 1}", "sweep.levels.stop", "must be >= start (8) (got 1)"),
    ("{stop = 8, step = 1}", "sweep.levels.start", "required field missing"),
    ("{start = 1, stop = 8, step = 1, x = 1}", "sweep.levels.x",
     "unknown field; allowed: start, stop, step, factor"),
    ("{start = 1, stop = 8}", "sweep.levels", "give exactly one of 'step' (add) or 'factor' (multiply)"),
    ("{start = 1, stop = 1000, step = 1}", "sweep.levels",
     "makes more than 100 levels; use a larger step or a smaller stop"),
    ("{start = 1, stop = 8, factor = 10}", "sweep.levels",
     "makes 1 level (1); a sweep needs at least 2: raise stop or lower the factor"),
    ("true", "sweep.levels", "must be a list of levels such as [1, 2, 4] or a range such as "
                             "{start = 1, stop = 64, factor = 2} (got true)"),
    ("[1, inf]", "sweep.levels", "levels must be positive numbers (got inf)"),
    ("[1, 2, 1]", "sweep.levels", "levels must not repeat (1 is given twice)"),
])
def test_sweep_level_errors_are_plain(tmp_path: Path, levels: str, field: str, message: str) -> None:
    body = BASE + f'[sweep]\nparameter = "vus"\nlevels = {levels}\n'
    with pytest.raises(SpecError) as err:
        load_experiment(write_experiment(tmp_path, body))
    assert (err.value.field, err.value.message) == (field, message)
    assert err.value.line == _line_of(body, "levels =")
    assert "Input should" not in str(err.value)


def test_sweep_level_error_through_the_command_line(lab: Lab, tmp_path: Path) -> None:
    body = BASE + '[sweep]\nparameter = "vus"\nlevels = {start = 1, stop = 8, factor = 1}\n'
    line = _bad_run(lab, tmp_path, body)
    assert line == (f"{tmp_path / 'exp.toml'}:{_line_of(body, 'levels')}: "
                    "sweep.levels.factor: must be > 1 (got 1)")


# ------------------------------------------------------------ 13: the number of stages


def test_too_many_stages_is_one_line_at_once(lab: Lab, tmp_path: Path) -> None:
    stages = ", ".join(['{ duration = "1ms", target = 1 }'] * 100_000)
    body = BASE.replace('duration = "1s"', f"stages = [{stages}]")
    line = _bad_run(lab, tmp_path, body)
    assert line == (f"{tmp_path / 'exp.toml'}:{_line_of(body, 'stages =')}: "
                    "load.stages: at most 1,000 stages, got 100,000")


def test_the_largest_number_of_stages_is_accepted(tmp_path: Path) -> None:
    stages = ", ".join(['{ duration = "10ms", target = 1 }'] * 1000)
    exp = load_experiment(write_experiment(tmp_path, BASE.replace('duration = "1s"', f"stages = [{stages}]")))
    assert len(exp.load.stages) == 1000
