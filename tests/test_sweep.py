"""Sweeps end to end: spec checks, one run per level, per-level figures, USL fits on a
real target whose knobs move σ and κ, the capacity at the SLO of a rate sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.plan import plan_runs
from lab.spec import SpecError, load_experiment
from lab.store import Store
from tests.conftest import REPO, run_lab, write_experiment

BASE = f"""
    [experiment]
    title = "sweep"
    [target]
    app = "targets.usl_demo:app"
    app_dir = "{REPO}"
    env = {{ USL_WORK_MS = "20" }}
    [load]
    vus = 1
    duration = "10s"
    [[load.requests]]
    path = "/work"
"""


def _exp(tmp_path: Path, sweep: str, extra: str = "") -> Path:
    return write_experiment(tmp_path, BASE + sweep + extra)


@pytest.mark.parametrize(("sweep", "message"), [
    ('[sweep]\nparameter = "rate"\nlevels = [1, 2]',
     "sweep.levels: level 1 gives rate: 'rate' is for the open model"),
    ('[sweep]\nparameter = "nope"\nlevels = [1, 2]', "sweep.parameter: unknown parameter 'nope'"),
    ('[sweep]\nparameter = "vus"\nlevels = [1.5, 2]',
     "sweep.levels: levels of vus must be whole numbers, got 1.5"),
    ('[sweep]\nparameter = "vus"\nlevels = [4]', "sweep.levels: a sweep needs at least 2 levels, got 1"),
    ('[sweep]\nparameter = "vus"\nlevels = [0, 2]', "sweep.levels: levels must be positive numbers"),
    ('[sweep]\nparameter = "vus"\nlevels = { start = 1, stop = 8 }',
     "give exactly one of 'step' (add) or 'factor' (multiply)"),
    ('[sweep]\nparameter = "target.cpus"\nlevels = [1, 2]\n', None),
])
def test_sweep_spec_is_checked(tmp_path: Path, sweep: str, message: str | None) -> None:
    path = _exp(tmp_path, "\n" + sweep + "\n")
    if message is None:
        plans = plan_runs(load_experiment(path))
        assert [p.target.cpus for p in plans] == [1, 2]
        return
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert message in str(err.value)
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"))
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_sweep_plans_one_run_per_variant_and_level(tmp_path: Path) -> None:
    path = _exp(tmp_path, """
        [sweep]
        parameter = "env.USL_SERIAL_MS"
        levels = { start = 0.5, stop = 2, step = 0.5 }
        duration = "2s"
        warmup = "1s"
        [[variants]]
        name = "a"
        [[variants]]
        name = "b"
    """)
    plans = plan_runs(load_experiment(path))
    assert [(p.variant, p.target.env["USL_SERIAL_MS"]) for p in plans] == [
        (v, level) for v in ("a", "b") for level in ("0.5", "1", "1.5", "2")]
    assert {p.load.duration for p in plans} == {2.0} and {p.load.warmup for p in plans} == {1.0}
    assert len({p.sweep.key for p in plans if p.sweep}) == 2


def test_usl_fit_of_a_real_sweep_follows_the_targets_knobs(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    path = _exp(tmp_path, """
        [sweep]
        parameter = "vus"
        levels = [1, 2, 4, 8, 16, 32]
        duration = "1.5s"
        warmup = "0.5s"
        [[variants]]
        name = "low"
        target.env = { USL_SERIAL_MS = "0.2", USL_CROSSTALK_MS = "0" }
        [[variants]]
        name = "high"
        target.env = { USL_SERIAL_MS = "1.0", USL_CROSSTALK_MS = "0.08" }
    """)
    res = run_lab("run", str(path), "--db", str(db), "--format", "json", timeout=240)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc["runs"]) == 12 and all(r["status"] == "completed" for r in doc["runs"])
    low, high = doc["sweeps"]
    assert (low["variant"], high["variant"]) == ("low", "high")
    assert [lv["level"] for lv in low["levels"]] == [1, 2, 4, 8, 16, 32]
    # Closed model, no think time: N ≈ X·R at every level.
    assert all(lv["little_ok"] for lv in low["levels"] + high["levels"]), low["levels"]
    lf, hf = low["fit"], high["fit"]
    # Measured: low σ ≈ 0.001, κ = 0; high σ ≈ 0.01, κ ≈ 0.003 with N* ≈ 17.
    assert hf["sigma"] + 30 * hf["kappa"] > lf["sigma"] + 30 * lf["kappa"]
    assert hf["kappa"] > lf["kappa"]
    assert hf["n_star"] is not None and 5 < hf["n_star"] < 64
    assert lf["r2"] > 0.9 and hf["r2"] > 0.8
    with Store(db, readonly=True) as store:
        fits = store._query("select s.variant, f.model, f.kappa from fits f join sweeps s "
                            "on s.id = f.sweep_id order by f.id")
        levels = store._query("select sweep_level from runs where sweep_id = 2 order by id")
    assert [(f["variant"], f["model"]) for f in fits] == [
        ("low", "usl"), ("low", "amdahl"), ("high", "usl"), ("high", "amdahl")]
    assert [r["sweep_level"] for r in levels] == [1, 2, 4, 8, 16, 32]
    # The stored sweep prints again with the fits and the plot, overlaid.
    table = run_lab("sweep", "1", "2", "--db", str(db))
    assert table.returncode == 0, table.stderr
    assert "USL fits" in table.stdout and "N*" in table.stdout and "throughput X(N)" in table.stdout
    listing = json.loads(run_lab("sweep", "--db", str(db), "--format", "json").stdout)
    assert [s["variant"] for s in listing["sweeps"]] == ["high", "low"]


def test_short_sweep_says_why_there_is_no_fit(tmp_path: Path) -> None:
    path = _exp(tmp_path, """
        [sweep]
        parameter = "vus"
        levels = [1, 4]
        duration = "1s"
    """)
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"))
    assert res.returncode == 0, res.stderr
    assert "a fit needs at least 6 completed levels, this sweep has 2" in res.stdout


def test_rate_sweep_reports_the_capacity_at_the_slo(tmp_path: Path) -> None:
    body = f"""
        [experiment]
        title = "knee"
        [target]
        app = "targets.usl_demo:app"
        app_dir = "{REPO}"
        env = {{ USL_WORK_MS = "5", USL_SERIAL_MS = "4" }}
        [load]
        model = "open"
        rate = 10
        [[load.requests]]
        path = "/work"
        [sweep]
        parameter = "rate"
        levels = [50, 100, 400]
        duration = "2s"
        warmup = "0.5s"
        slo_p99_ms = 50
    """
    # 4 ms of serial CPU per request: capacity ~250 req/s, so 400 req/s queues without bound.
    path = write_experiment(tmp_path, body)
    res = run_lab("run", str(path), "--db", str(tmp_path / "r.db"), "--format", "json")
    assert res.returncode == 0, res.stderr
    sweep = json.loads(res.stdout)["sweeps"][0]
    assert sweep["capacity_rps"] == 100
    assert sweep["levels"][-1]["p99_ms"] > 50
    table = run_lab("sweep", "1", "--db", str(tmp_path / "r.db"))
    assert "capacity at the SLO" in table.stdout and "100.0 req/s" in table.stdout


@pytest.mark.parametrize(("name", "runs", "parameter"), [
    ("usl-demo", 21, "vus"), ("horizontal-scaling-sweep", 6, "workers"), ("shared-state-sweep", 14, "vus"),
])
def test_catalog_sweeps_plan_one_run_per_variant_and_level(name: str, runs: int, parameter: str) -> None:
    plans = plan_runs(load_experiment(REPO / "experiments" / f"{name}.toml"))
    assert len(plans) == runs
    assert {p.sweep.parameter for p in plans if p.sweep} == {parameter}
    if parameter == "workers":
        assert [p.target.workers for p in plans] == [1, 2, 3, 4, 6, 8]
