"""Sweeps without load: one run per variant and level, the fit of a short sweep, the plot,
and stored sweeps (deleting a level refits or drops the fit; the runs listing).
"""

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
from lab.spec import load_experiment
from lab.store import Store
from tests.conftest import REPO, write_experiment
from tests.synthetic import USL_DEMO as BASE
from tests.synthetic import record_synthetic_sweeps


def _exp(tmp_path: Path, sweep: str, extra: str = "") -> Path:
    return write_experiment(tmp_path, BASE + sweep + extra)


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


def test_short_sweep_says_why_there_is_no_fit(tmp_path: Path) -> None:
    # Stored data is enough: lab run prints a sweep through the same code as lab sweep
    # (test_rate_sweep_reports_the_capacity_at_the_slo reads a real run's table).
    db = tmp_path / "r.db"
    record_synthetic_sweeps(tmp_path, db, {"short": (100.0, 0.02, 0.001)}, levels=(1, 4))
    code, out, err = _lab("sweep", "1", "--db", str(db))
    assert code == 0, err
    assert "a fit needs at least 6 completed levels, this sweep has 2" in out


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


def test_the_sweep_list_tells_a_fit_without_a_peak_from_no_fit(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    # Sweep 1: κ = 0, so the USL curve never peaks and N* is –; sweep 2: too short to fit.
    record_synthetic_sweeps(tmp_path, db, {"no-peak": (100.0, 0.05, 0.0)})
    record_synthetic_sweeps(tmp_path, db, {"short": (100.0, 0.02, 0.001)}, levels=(1, 4))
    code, out, err = _lab("sweep", "--db", str(db))
    assert code == 0, err
    cells = [line.translate(str.maketrans("┃│", "  ")).split() for line in out.splitlines()]
    assert next(c for c in cells if "N*" in c)[-4:] == ["N*", "σ", "κ", "R²"]
    rows = {c[0]: c for c in cells if c and c[0].isdigit()}
    n_star, sigma, kappa, r2 = rows["1"][-4:]
    assert n_star == "–" and float(sigma) == pytest.approx(0.05, rel=0.05)
    assert float(kappa) == pytest.approx(0.0, abs=1e-4) and float(r2) > 0.99
    assert rows["2"][-4:] == ["–"] * 4
    listing = json.loads(_lab("sweep", "--db", str(db), "--format", "json")[1])
    fits = next(sw["fits"] for sw in listing["sweeps"] if sw["id"] == 1)
    usl = next(f for f in fits if f["model"] == "usl")
    assert f"{usl['sigma']:.3g}" == sigma and f"{usl['r2']:.3f}" == r2


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
