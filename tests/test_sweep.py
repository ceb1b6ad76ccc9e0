"""Sweeps end to end: spec checks, one run per level, per-level figures, USL fits on a
real target whose knobs move σ and κ, the capacity at the SLO of a rate sweep."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from lab.analysis.sweep import LevelFigures, analyse, delete_run_and_refit
from lab.analysis.usl import usl_throughput
from lab.plan import plan_runs
from lab.report.sweep_report import sweep_plot
from lab.report.table import runs_table
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
        duration = "0.6s"
        warmup = "0s"
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
    # Measured: low σ ≈ 0.001, κ = 0; high σ ≈ 0.01, κ ≈ 0.003 with N* ≈ 17. With these
    # 0.6 s levels, all measured (16 s for the 12 runs on 2 cores; three runs): low σ
    # 0.003–0.008, κ = 0, R² ≥ 0.999; high σ 0–0.04, κ 0.0021–0.0027, N* 19–22, R² ≥ 0.997.
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
    code, out, err = _lab("sweep", "1", "2", "--db", str(db))
    assert code == 0, err
    assert "USL fits" in out and "N*" in out and "throughput X(N)" in out
    listing = json.loads(_lab("sweep", "--db", str(db), "--format", "json")[1])
    assert [s["variant"] for s in listing["sweeps"]] == ["high", "low"]
    # lab report of real runs (tests/test_html_report.py renders synthetic ones): run 7, the
    # first level of "high", brings its sweep along, with the fits and the time series.
    page = tmp_path / "report.html"
    report = run_lab("report", "1", "7", "-o", str(page), "--db", str(db))
    assert report.returncode == 0 and report.stdout == "", report.stderr
    html = page.read_text(encoding="utf-8")
    assert "<h2>Sweeps</h2>" in html and "Throughput X(N) against vus" in html
    assert "sweep of vus · low (sweep 1)" in html and "sweep of vus · high (sweep 2)" in html
    assert ">usl</td>" in html and ">amdahl</td>" in html and "N* ≈" in html
    # The runs' four time-series charts, then X(N) and R(N) with both sweeps overlaid.
    assert html.count('<svg class="plot"') == 6, html.count('<svg class="plot"')


def test_short_sweep_says_why_there_is_no_fit(tmp_path: Path) -> None:
    # Stored data is enough: lab run prints a sweep through the same code as lab sweep
    # (test_rate_sweep_reports_the_capacity_at_the_slo reads a real run's table).
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"short": (100.0, 0.02, 0.001)}, levels=(1, 4))
    code, out, err = _lab("sweep", "1", "--db", str(db))
    assert code == 0, err
    assert "a fit needs at least 6 completed levels, this sweep has 2" in out


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
        duration = "1.5s"
        warmup = "0s"
        slo_p99_ms = 50
    """
    # 4 ms of serial CPU per request: capacity ~250 req/s, so 400 req/s queues without bound.
    # Arrivals at a set rate need no warm-up. Measured (1.5 s levels, 3 runs): p99 10–12 ms
    # at 50 and 100 req/s with 99.9–100 % of the rate achieved; 1.4 s at 400 req/s.
    path = write_experiment(tmp_path, body)
    # lab run prints the sweep (levels, capacity, note) as its table (JSON: the usl test).
    table = run_lab("run", str(path), "--db", str(tmp_path / "r.db"))
    assert table.returncode == 0, table.stderr
    assert "sweep of rate · default (sweep 1)" in table.stdout
    assert "offered req/s" in table.stdout  # the plot: p99 against the offered rate
    code, out, err = _lab("sweep", "1", "--db", str(tmp_path / "r.db"), "--format", "json")
    assert code == 0, err
    sweep = json.loads(out)["sweeps"][0]
    # The README's rule, recomputed from the levels: the highest offered rate whose p99
    # stayed under the SLO with >= 99 % of it achieved. 100 req/s here; a busy machine
    # stretches the 9 ms of CPU a request and may leave no level under the SLO.
    met = [lv["offered_rps"] for lv in sweep["levels"]
           if lv["p99_ms"] < 50 and lv["throughput_rps"] >= 0.99 * lv["offered_rps"]]
    assert sweep["capacity_rps"] == (max(met) if met else None), sweep["levels"]
    # 400 req/s is beyond what 4 ms of serial CPU a request allows, on any machine.
    assert sweep["levels"][-1]["p99_ms"] > 50 and sweep["capacity_rps"] != 400
    line = " ".join(table.stdout.split())
    if met:
        assert ("capacity at the SLO (p99 < 50 ms, ≥ 99 % of the offered rate achieved): "
                f"{max(met):.1f} req/s") in line, table.stdout
    else:
        assert "no level met the SLO (p99 < 50 ms" in line, table.stdout


@pytest.mark.parametrize(("name", "runs", "parameter"), [
    ("usl-demo", 21, "vus"), ("horizontal-scaling-sweep", 6, "workers"), ("shared-state-sweep", 14, "vus"),
])
def test_catalog_sweeps_plan_one_run_per_variant_and_level(name: str, runs: int, parameter: str) -> None:
    plans = plan_runs(load_experiment(REPO / "experiments" / f"{name}.toml"))
    assert len(plans) == runs
    assert {p.sweep.parameter for p in plans if p.sweep} == {parameter}
    if parameter == "workers":
        assert [p.target.workers for p in plans] == [1, 2, 3, 4, 6, 8]


# --------------------------------------------------------------------------- stored sweeps without load


def record_synthetic_sweeps(folder: Path, db: Path, curves: dict[str, tuple[float, float, float]],
                            levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32), fit: bool = True) -> None:
    """Store one sweep per variant whose throughput follows the USL curve (λ, σ, κ) of
    ``curves`` exactly, written through the Recorder as a real run is (no load, no target);
    with ``fit``, analysed and saved as ``lab run`` does, so ``fits`` holds their N*."""
    from lab.analysis.summary import Latency, Summary
    from lab.analysis.sweep import analyse_stored
    from lab.events import HostFacts, RunFinished, RunStarted
    from lab.store import Recorder

    variants = "".join(f'[[variants]]\nname = "{name}"\n' for name in curves)
    body = (BASE + f'\n[sweep]\nparameter = "vus"\nlevels = {list(levels)}\nduration = "1s"\n'
            + variants)
    plans = plan_runs(load_experiment(write_experiment(folder, body, name="synthetic")))
    host = HostFacts(cores=2, memory_bytes=8 * 1024**3, python="3.11.9", platform="Linux-test")
    with Store(db) as store:
        recorder = Recorder(store)
        for i, plan in enumerate(plans):
            assert plan.sweep is not None
            lam, sigma, kappa = curves[plan.variant]
            n = plan.sweep.level
            x = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
            r_ms = n / x * 1000
            lat = Latency(p50=r_ms, p90=r_ms * 1.2, p95=r_ms * 1.3, p99=r_ms * 1.5, max=r_ms * 2,
                          mean=r_ms, count=int(x * 2))
            summary = Summary(requests=int(x * 2), ok=int(x * 2), errors=0, dropped=0, interrupted=0,
                              bytes=0, window_s=2.0, throughput_rps=x, attempts_rps=x, latency_ms=lat,
                              latency_all_ms=lat, service_ms=lat, error_rate=0.0)
            key = f"synthetic-{i}"
            recorder(RunStarted(key, plan, 1_700_000_000.0 + i, host, "0.1.0"))
            recorder(RunFinished(key, "completed", None, 1_700_000_000.5 + i, summary, {}))
        if fit:
            analyse_stored(store, [s.id for s in reversed(store.list_sweeps())], save=True)


def _lab(*args: str) -> tuple[int, str, str]:
    """``lab ARGS`` in-process (no subprocess: these commands only read the database)."""
    from click.testing import CliRunner

    from lab.cli import cli

    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def _usl_level(n: float, x: float) -> LevelFigures:
    return LevelFigures(level=n, run_id=int(n), status="completed", throughput_rps=x,
                        throughput_spread_rps=None, completed_rps=x, latency_mean_ms=None,
                        latency_spread_ms=None, p50_ms=None, p95_ms=None, p99_ms=None, error_rate=0.0,
                        offered_rps=None, little_n=None, little_ok=None, generator_bound=False)


def test_sweep_plot_draws_the_measured_points_over_the_fitted_curve() -> None:
    # The points lie exactly on the fitted curve, so the curve passes through every point's
    # cell: only points drawn after it stay visible (each as one ● in the plot body).
    levels = [1, 2, 4, 8, 16, 32]
    analysis = analyse("vus", "closed", [_usl_level(n, float(usl_throughput(n, 50.0, 0.02, 0.001)))
                                         for n in levels], None)
    assert analysis.usl is not None
    text = sweep_plot([("one", analysis)], width=78, height=20)
    # Every level's ●, plus the one of our legend line under the plot, "● one".
    assert text.count("●") == len(levels) + 1, text


def test_deleting_a_level_refits_the_sweep_or_drops_its_fit(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    # Sweep 1 has 7 levels (one may go and still leave a fit), sweep 2 six.
    record_synthetic_sweeps(tmp_path, db, {"seven": (100.0, 0.05, 0.002)}, levels=(1, 2, 4, 8, 16, 32, 64))
    record_synthetic_sweeps(tmp_path, db, {"six": (100.0, 0.02, 0.001)})
    with Store(db) as store:
        seven, six = store.get_sweep(1), store.get_sweep(2)
        n_star_before = next(f["n_star"] for f in seven.fits if f["model"] == "usl")
        assert n_star_before == pytest.approx((0.95 / 0.002) ** 0.5, rel=1e-3)
        # Level 32 of "seven" goes: six levels are left, so the fit is computed again from them.
        level_32 = next(r.id for r in seven.runs if r.sweep_level == 32)
        analysis = delete_run_and_refit(store, level_32)
        assert analysis is not None and analysis.usl is not None
        refit = store.get_sweep(1)
        assert refit.missing_levels == [32] and len(refit.runs) == 6
        usl = next(f for f in refit.fits if f["model"] == "usl")
        assert usl["points"] == 6 and usl["n_star"] == pytest.approx(n_star_before, rel=1e-3)
        # A level of "six" goes: five are left, so no fit stays stored.
        assert delete_run_and_refit(store, six.runs[3].id) is not None
        assert store.get_sweep(2).fits == [] and store.get_sweep(2).missing_levels == [8]
        # The plain store deletion (any delete path) never leaves a stale fit behind either.
        assert store.delete_run(refit.runs[0].id) == 1
        assert store.get_sweep(1).fits == []
    code, out, err = _lab("sweep", "--db", str(db))
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert "5 of 7, missing 1, 32" in rows["1"] and rows["1"].rstrip().endswith("–")
    assert "5 of 6, missing 8" in rows["2"] and rows["2"].rstrip().endswith("–")
    assert "N* is fitted from the levels left" in " ".join(out.split())  # the caption, wrapped
    listing = json.loads(_lab("sweep", "--db", str(db), "--format", "json")[1])
    assert {s["id"]: s["missing_levels"] for s in listing["sweeps"]} == {1: [1, 32], 2: [8]}
    assert all(s["fits"] == [] for s in listing["sweeps"])
    code, out, _ = _lab("sweep", "2", "--db", str(db))
    assert code == 0 and "this sweep has 5" in out and "no stored run for level 8" in out


def test_deleting_a_sweeps_last_run_removes_the_sweep(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"only": (100.0, 0.02, 0.001)}, levels=(1, 2))
    with Store(db) as store:
        first, second = (r.id for r in store.get_sweep(1).runs)
        assert store.delete_run(first) == 1
        assert delete_run_and_refit(store, second) is None
        assert store.list_sweeps() == [] and store._query("select * from fits") == []


def test_runs_listing_names_each_runs_sweep_and_level(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"a": (100.0, 0.02, 0.001), "b": (100.0, 0.05, 0.002)},
                            fit=False)
    code, out, err = _lab("runs", "--db", str(db))
    assert code == 0, err
    assert "sweep" in out.splitlines()[1]
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 12
    assert "2 · vus=32" in rows[0] and "1 · vus=1" in rows[-1]
    doc = json.loads(_lab("runs", "--db", str(db), "--format", "json")[1])
    assert [(r["sweep_id"], r["sweep_level"]) for r in doc["runs"]][:2] == [(2, 32.0), (2, 16.0)]
    assert all("summary" in r and "variant" in r for r in doc["runs"])  # existing keys stay


def test_runs_listing_without_sweeps_has_no_sweep_column(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"a": (100.0, 0.02, 0.001)}, levels=(1, 2), fit=False)
    with Store(db) as store:
        plain = [replace(r, sweep_id=None, sweep_level=None) for r in store.list_runs()]
        levels = store.list_runs()
    assert "sweep" not in "".join(c.header for c in runs_table(plain).columns)
    assert "sweep" in "".join(c.header for c in runs_table(levels).columns)


def test_a_fit_left_by_an_older_delete_is_listed_as_stale(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"seven": (100.0, 0.05, 0.002)}, levels=(1, 2, 4, 8, 16, 32, 64))
    # What a delete of an earlier version did: the run and its rows go, its sweep's fits stay.
    conn = sqlite3.connect(db)
    try:
        for table in ("intervals", "resources", "errors", "run_events", "summaries", "target_samples"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = 1")
        conn.execute("DELETE FROM runs WHERE id = 1")
        conn.commit()
    finally:
        conn.close()
    code, out, err = _lab("sweep", "--db", str(db))
    assert code == 0, err
    assert "6 of 7, missing 1" in out and "21.8 (stale: 7 levels)" in out
