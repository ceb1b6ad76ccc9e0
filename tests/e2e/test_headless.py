"""Headless use from scripts and CI: thresholds, exit codes, repeats, the noise-aware
comparison, and streams (data on stdout, progress on stderr only when asked or a TTY)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from lab.plan import plan_runs
from lab.spec import load_experiment
from lab.store import Store
from tests.conftest import REPO, lab_in_process, leaves_no_processes, run_lab, write_experiment
from tests.synthetic import QUICK, T0, record, summary_of, synthetic_events

EXP = f"""
    [experiment]
    title = "headless"
    [target]
    app = "targets.testing:app"
    app_dir = "{REPO}"
    [load]
    vus = 2
    duration = "2s"
    [[load.requests]]
    path = "/sleep/20"
    [thresholds]
    p95 = "<500ms"
    [[variants]]
    name = "a"
    [[variants]]
    name = "b"
    thresholds = {{ throughput = ">100000" }}
"""
SLOWER_B = '    load.requests = [{ path = "/sleep/40" }]\n'
"""Added to variant b in the module's shared run: twice the latency of a, a regression."""
SharedRun = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.mark.parametrize(("text", "message"), [
    ("p95<2kg", "unit 'kg' does not fit p95"),
    ("speed>3", "unknown metric 'speed'"),
    ("p95 = 3", "is not METRIC OP VALUE"),
])
def test_bad_thresholds_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    exp = write_experiment(tmp_path, EXP)
    res = lab_in_process("run", str(exp), "--db", str(tmp_path / "r.db"), "--threshold", text)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.db").exists()
    bad_file = write_experiment(tmp_path, EXP.replace('p95 = "<500ms"', 'p95 = "<500 parsecs"'), "bad")
    res = lab_in_process("run", str(bad_file), "--db", str(tmp_path / "r.db"))
    assert res.returncode == 2 and "thresholds.p95: unit 'parsecs' does not fit p95" in res.stderr


@pytest.fixture(scope="module")
def thresholds_run(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """One ``lab run`` of EXP (variant b twice as slow) with a command-line threshold, as
    JSON: runs 1 (a) and 2 (b) in the database. The tests only read it."""
    work = tmp_path_factory.mktemp("headless")
    db = work / "r.db"
    exp = write_experiment(work, EXP + SLOWER_B)
    with leaves_no_processes("lab run headless"):
        res = run_lab("run", str(exp), "--db", str(db), "--format", "json",
                      "--threshold", "error_rate<1%")
    return db, res


def test_thresholds_per_run_exit_code_and_json(thresholds_run: SharedRun) -> None:
    db, res = thresholds_run
    # Variant b's own threshold (100k req/s) cannot be met: exit code 1.
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    checks = {(t["variant"], t["threshold"]): t["passed"] for t in doc["thresholds"]}
    assert checks == {("a", "p95<500ms"): True, ("a", "error_rate<1%"): True,
                      ("b", "p95<500ms"): True, ("b", "throughput>100000"): False,
                      ("b", "error_rate<1%"): True}
    assert doc["thresholds_passed"] is False
    assert "1 threshold check failed: run 2 (b) throughput>100000" in res.stderr
    # lab compare checks stored runs the same way, and its table lists every check. (A run
    # that meets every threshold exits 0: the repeat test's.)
    cmp = lab_in_process("compare", "1", "2", "--db", str(db), "--threshold", "p95<1ms",
                  "--threshold", "p50<1s")
    assert cmp.returncode == 1 and "✗ run 1 (a) p95<1ms" in cmp.stdout
    assert "✓ run 1 (a) p50<1s" in cmp.stdout and "2 passed, 2 failed" in cmp.stdout


def test_repeat_gives_median_and_spread_and_compare_is_noise_aware(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    body = EXP.replace('    thresholds = { throughput = ">100000" }\n', "")
    body = body.replace('duration = "2s"', 'duration = "1s"')
    exp = write_experiment(tmp_path, body)
    # --quiet wins over --progress: nothing on stderr.
    res = run_lab("run", str(exp), "--db", str(db), "--repeat", "2", "--format", "json",
                  "-q", "--progress")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    doc = json.loads(res.stdout)
    # Every threshold met (the file's p95<500ms, for all four runs): exit code 0.
    assert doc["thresholds_passed"] is True and len(doc["thresholds"]) == 4
    # Interleaved: a, b, a, b.
    assert [r["variant"] for r in doc["runs"]] == ["a", "b", "a", "b"]
    repeats = {r["variant"]: r for r in doc["repeats"]}
    assert repeats["a"]["run_ids"] == [1, 3] and repeats["b"]["run_ids"] == [2, 4]
    tp = repeats["a"]["throughput_rps"]
    measured = sorted(r["summary"]["throughput_rps"] for r in doc["runs"] if r["variant"] == "a")
    assert (tp["low"], tp["high"]) == pytest.approx((measured[0], measured[-1]), abs=1e-3)
    assert tp["median"] == pytest.approx(sum(measured) / 2, abs=1e-3)
    # 2 VUs, each request at least 20 ms: never more than 100 req/s (measured 97).
    assert 0 < tp["median"] <= 100, tp
    # b against a's repetitions: same endpoint, so throughput is within noise.
    cmp = lab_in_process("compare", "--baseline", "1", "2", "4", "--db", str(db), "--format", "json")
    assert cmp.returncode == 0, cmp.stderr
    change = json.loads(cmp.stdout)["changes"][0]
    assert change["run_ids"] == [2, 4]
    assert {f["figure"]: f["baseline"]["runs"] for f in change["figures"]}["throughput_rps"] == 2


def test_compare_says_within_noise_better_and_worse(tmp_path: Path) -> None:
    # Stored runs with known per-second figures (the same wavy series at three levels):
    # 1, the baseline, ~1,100 req/s ± 73 (two standard errors of its 6 seconds) with p50
    # ~14 ms; 2 a hair faster, inside that band; 3 half as fast again, and twice as quick.
    plan = plan_runs(load_experiment(write_experiment(tmp_path, QUICK, "quick")))[0]
    db = tmp_path / "r.db"
    with Store(db) as store:
        for k, (rps, p95_ms) in enumerate([(1000, 20.0), (1010, 20.2), (1500, 10.0)]):
            events = synthetic_events(plan, f"run{k}", rps, p95_ms, 6, T0 + 100 * k)
            record(store, events, "completed", None, T0 + 100 * k + 7,
                   summary_of(events, 0, 0.5, 60_000_000, None))
    res = lab_in_process("compare", "--baseline", "1", "2", "3", "--db", str(db), "--format", "json",
                  "--fail-on-regression")
    assert res.returncode == 0, res.stderr  # nothing got worse
    verdicts = {tuple(c["run_ids"]): {f["figure"]: f["verdict"] for f in c["figures"]}
                for c in json.loads(res.stdout)["changes"]}
    assert verdicts[(2,)] == {"throughput_rps": "within noise", "p50_ms": "within noise",
                              "p95_ms": "within noise", "p99_ms": "within noise",
                              "error_rate": "within noise"}
    assert verdicts[(3,)]["throughput_rps"] == "better" and verdicts[(3,)]["p50_ms"] == "better"
    # Against run 3, run 1 got worse: the regression gate fails.
    back = lab_in_process("compare", "--baseline", "3", "1", "--db", str(db), "--fail-on-regression")
    assert back.returncode == 1 and "a figure got worse beyond the measured noise" in back.stderr
    table = lab_in_process("compare", "--baseline", "1", "2", "3", "--db", str(db))
    assert table.returncode == 0, table.stderr
    # One table per candidate, each figure's verdict at the end of its row.
    rows = [line.split() for line in table.stdout.splitlines() if line.startswith("throughput_rps")]
    assert [" ".join(row[-2:]) for row in rows] == ["within noise", "+50.0% better"], table.stdout


def test_compare_flags_a_real_regression_beyond_noise(thresholds_run: SharedRun) -> None:
    # Run 2 waits 40 ms a request, run 1 20 ms: p50 ~41 against ~21 ms, each ± well under
    # a millisecond over its two intervals.
    db, _ = thresholds_run
    table = run_lab("compare", "--baseline", "1", "2", "--db", str(db), "--fail-on-regression")
    assert table.returncode == 1
    assert "p50_ms" in table.stdout and "worse" in table.stdout
    assert "a figure got worse beyond the measured noise" in table.stderr


def test_progress_only_on_a_terminal_and_never_on_stdout(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, EXP.replace('duration = "2s"', 'duration = "1s"'))
    # stderr a terminal (a pty), stdout a pipe: progress on the terminal, data alone on stdout.
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(exp), "--variant", "a",
                             "--db", str(tmp_path / "r.db"), "--format", "json"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=follower,
                            env={**os.environ, "COLUMNS": "100"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "[a]" in terminal and "req/s" in terminal
    assert json.loads(out)["runs"][0]["variant"] == "a"
    # (--quiet silences it even with --progress: see the repeat test's run.)


def _documented_schema() -> dict[str, object]:
    text = (REPO / "docs" / "json-output.md").read_text()
    block = text.split("<!-- lab-json-schema -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_json_output_validates_against_the_documented_schema(thresholds_run: SharedRun) -> None:
    import jsonschema

    schema = _documented_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    db, res = thresholds_run
    assert res.returncode == 1  # variant b's threshold
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, schema)
    assert "thresholds" in doc
    jsonschema.validate(json.loads(lab_in_process("compare", "1", "2", "--db", str(db), "--format",
                                           "json").stdout), schema)
    # The schema is strict enough to catch a broken document.
    doc["runs"][0]["status"] = "exploded"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
