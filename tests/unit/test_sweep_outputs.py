"""What `lab sweep` shows of stored sweeps, without load: a level that measured nothing,
`missing_levels` in one sweep's JSON, and the sweep plot (legend under it, one marker per
variant, y axis sized to the data, curves over the measured range)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.analysis.sweep import analyse_stored, delete_run_and_refit, plot_data
from lab.analysis.usl import usl_throughput
from lab.events import HostFacts, RunFinished, RunStarted
from lab.figures import Latency, Summary
from lab.plan import plan_runs
from lab.report.sweep_report import sweep_plot
from lab.spec import load_experiment
from lab.store import Store, StoreRecorder
from tests.conftest import REPO, write_experiment

LEVELS = (1, 2, 4, 8, 16, 32, 64)
# The three usl-demo variants as a tester measured them: a scalable one reaching 2,578 req/s
# and two levelling off near 600 req/s, which a y axis sized for a legend squashed.
TESTER_CURVES = {"scalable": (46.6, 0.00251, 0.0), "contention": (43.7, 0.0199, 0.000562),
                 "coherency": (47.2, 0.0, 0.00185)}


def _record(folder: Path, db: Path, curves: dict[str, tuple[float, float, float]],
            levels: tuple[float, ...] = LEVELS, unmeasured: tuple[float, ...] = ()) -> None:
    """One stored sweep per variant, throughput on the USL curve (λ, σ, κ) of ``curves``,
    written through the StoreRecorder as a real run is; a level in ``unmeasured`` ends aborted
    before it measured anything (no summary). Analysed and saved as ``lab run`` does."""
    variants = "".join(f'[[variants]]\nname = "{name}"\n' for name in curves)
    body = f"""
[experiment]
title = "sweep outputs"
[target]
app = "targets.usl_demo:app"
app_dir = "{REPO}"
[load]
vus = 1
duration = "1s"
[[load.requests]]
path = "/work"
[sweep]
parameter = "vus"
levels = {list(levels)}
{variants}"""
    plans = plan_runs(load_experiment(write_experiment(folder, body, name="outputs")))
    host = HostFacts(cores=2, memory_bytes=8 * 1024**3, python="3.11.9", platform="Linux-test")
    with Store(db) as store:
        recorder = StoreRecorder(store)
        for i, plan in enumerate(plans):
            assert plan.sweep is not None
            n = plan.sweep.level
            key = f"outputs-{i}"
            recorder(RunStarted(key, plan, 1_700_000_000.0 + i, host, "0.1.0"))
            if n in unmeasured:
                recorder(RunFinished(key, "aborted", "stopped by the user", 1_700_000_000.5 + i, None))
                continue
            x = float(usl_throughput(n, *curves[plan.variant]))
            r_ms = n / x * 1000
            lat = Latency(p50=r_ms, p90=r_ms, p95=r_ms, p99=r_ms, max=r_ms, mean=r_ms, count=int(x * 2))
            summary = Summary(requests=int(x * 2), ok=int(x * 2), errors=0, dropped=0, interrupted=0,
                              bytes=0, window_s=2.0, throughput_rps=x, attempts_rps=x, latency_ms=lat,
                              latency_all_ms=lat, service_ms=lat, error_rate=0.0)
            recorder(RunFinished(key, "completed", None, 1_700_000_000.5 + i, summary, {}))
        analyse_stored(store, [s.id for s in reversed(store.list_sweeps())], save=True)


def _lab(*args: str) -> tuple[int, str, str]:
    """``lab ARGS`` in-process (these commands only read the database)."""
    from click.testing import CliRunner

    from lab.cli import cli

    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_a_level_that_measured_nothing_shows_dashes_and_nulls_and_is_not_fitted(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _record(tmp_path, db, {"one": (100.0, 0.02, 0.001)}, unmeasured=(8,))
    code, out, err = _lab("sweep", "1", "--db", str(db))
    assert code == 0, err
    row = next(line for line in out.splitlines() if "aborted" in line)
    # vus, run, status, then every figure "–": X, ±, R, ±, p95, p99, err %, Little N.
    assert row.split() == ["8", "4", "aborted"] + ["–"] * 8, row
    assert "0.0 " not in row and "0.00" not in row
    code, out, err = _lab("sweep", "1", "--db", str(db), "--format", "json")
    assert code == 0, err
    sweep = json.loads(out)["sweeps"][0]
    level = next(lv for lv in sweep["levels"] if lv["level"] == 8)
    assert level["measured"] is False and level["status"] == "aborted"
    assert level["throughput_rps"] is None and level["error_rate"] is None and level["completed_rps"] is None
    assert all(lv["measured"] for lv in sweep["levels"] if lv["level"] != 8)
    # The other six levels are fitted, exactly (they lie on the curve).
    assert sweep["fit"]["points"] == 6 and abs(sweep["fit"]["kappa"] - 0.001) < 1e-6
    # And plotted: six points, plus the legend's marker.
    code, out, _ = _lab("sweep", "1", "--db", str(db))
    plot = out[out.index("throughput X(N)"):]
    assert plot.count("●") == 6 + 1, plot


def test_one_sweeps_json_lists_its_missing_levels_as_the_listing_does(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _record(tmp_path, db, {"one": (100.0, 0.02, 0.001)})
    with Store(db) as store:
        run = next(r for r in store.get_sweep(1).runs if r.sweep_level == 32)
        delete_run_and_refit(store, run.id)
    code, out, err = _lab("sweep", "1", "--db", str(db), "--format", "json")
    assert code == 0, err
    one = json.loads(out)["sweeps"][0]
    _code, out, _err = _lab("sweep", "--db", str(db), "--format", "json")
    listed = json.loads(out)["sweeps"][0]
    assert one["missing_levels"] == listed["missing_levels"] == [32]


def test_sweep_plot_sizes_the_y_axis_to_the_data_with_the_legend_underneath(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _record(tmp_path, db, TESTER_CURVES)
    with Store(db) as store:
        sweeps = [(variant, analysis) for _id, variant, analysis in analyse_stored(store, [1, 2, 3])]
    text = sweep_plot(sweeps, width=78, height=20)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 78
    top, bottom = (next(i for i, line in enumerate(lines) if mark in line) for mark in ("┌", "└"))
    body = lines[top + 1:bottom]
    # The top y label: the highest point (2,578 req/s at 64 VUs) plus a small margin. It was
    # 4,834 with room for plotext's legend of six lines inside the plot.
    y_top = float(body[0].split("┤")[0])
    highest = max(lv.throughput_rps or 0.0 for _v, a in sweeps for lv in a.levels)
    assert highest < y_top <= 1.06 * highest
    # No legend inside the plot; ours is under it: marker → variant, and what the lines are.
    assert not any(name in row for row in body for name in TESTER_CURVES)
    legend = "\n".join(lines[bottom + 1:])
    for entry in ("● scalable", "■ contention", "▲ coherency", "points: measured", "line: USL fit",
                  "vertical line: N*"):
        assert entry in legend, legend
    # Each variant's points in its own marker, told apart without colour.
    for mark in "●■▲":
        assert any(mark in row for row in body), mark


def test_fitted_curves_cover_the_measured_levels_only(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _record(tmp_path, db, {"from4": (100.0, 0.02, 0.001)}, levels=(4, 6, 8, 12, 16, 24))
    with Store(db) as store:
        analysis = analyse_stored(store, [1])[0][2]
    data = plot_data(analysis)
    assert analysis.usl is not None and data.curve
    assert data.curve[0][0] == 4  # not from N = 1: below the first level the fit extrapolates
    assert data.curve[-1][0] == pytest.approx(analysis.usl.n_star * 1.2)  # N* ≈ 31 just past 24
