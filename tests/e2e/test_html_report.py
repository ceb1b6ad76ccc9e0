"""``lab report``: one self-contained HTML file of stored runs, through the real entry point
and checked in headless Chromium.

The runs are the synthetic ones of tests/unit/test_html_report.py. The report of real runs
is checked in tests/e2e/test_sweep.py (test_usl_fit_of_a_real_sweep_follows_the_targets_knobs).
The screenshot test needs Debian's ``chromium``: it is skipped without it, except under
``CI=true``, where it must exist.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psutil
import pytest

from lab.report.html import (
    PLOT_BG,
    run_color,
)
from lab.store import Store
from tests.conftest import lab_in_process
from tests.e2e.html_shot import chromium, count_color, plot_bands, read_png, screenshot
from tests.unit.test_html_report import EXPERIMENT, SWEEP_CURVE, report_db  # noqa: F401 (fixture)

"""λ, σ, κ of the synthetic sweep: what usl-demo measures with USL_SERIAL_MS = 1.0 and
USL_CROSSTALK_MS = 0.08 (N* ≈ 18)."""

EXTERNAL = re.compile(r"<script|<link|<img|<iframe|<object|<embed|@import|url\(|\b(?:src|href)\s*=",
                      re.IGNORECASE)
"""Anything in a page that could fetch a resource."""


def lab_report(*args: str) -> subprocess.CompletedProcess[str]:
    """``lab report ARGS`` (through ``lab.cli.main``, in this process)."""
    return lab_in_process("report", *args)


def _report(db: Path, out: Path, *ids: int) -> str:
    res = lab_report(*(str(i) for i in ids), "-o", str(out), "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert out.is_file()
    return out.read_text(encoding="utf-8")


def _assert_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html and "https://" not in html
    assert EXTERNAL.search(html) is None, EXTERNAL.search(html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def _chromium_or_skip() -> None:
    if chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian package chromium); the screenshot "
                    "check of lab report needs it")


def _no_browser_left(marker: Path) -> None:
    left = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(marker) in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            left.append(f"{proc.info['pid']}: {cmd[:120]}")
    assert not left, "chromium processes left behind: " + "; ".join(left)


def test_report_of_two_runs_is_one_self_contained_file(report_db: Path, tmp_path: Path) -> None:
    html = _report(report_db, tmp_path / "out.html", 1, 2)
    _assert_self_contained(html)
    # The header, the runs and the comparison with its deltas.
    assert "lab report 1 2" in html and "html-smoke" in html
    assert "HTML &lt;report&gt; &amp; smoke" in html and "<report>" not in html
    assert "sleepy-20ms" in html and "fast-path" in html
    assert "0.1.0" in html and "cores" in html
    assert "change vs run 1 (sleepy-20ms)" in html
    for header in ("req/s", "p95", "p99", "err", "drop", "CPU", "RSS"):
        assert header in html
    assert "reported by the target" in html
    # The four time-series charts, as inline SVG, one line per run.
    assert html.count("<svg class=\"plot\"") == 4
    for title in ("Throughput", "Latency", "Target CPU", "Target RSS"):
        assert f"<figcaption>{title}</figcaption>" in html
    for i in (0, 1):
        assert f'stroke="{run_color(i)}"' in html
    assert "1 sleepy-20ms" in html and "2 fast-path" in html
    assert "Sweeps" not in html
    # -o - writes the page to stdout instead.
    res = lab_report("1", "2", "-o", "-", "--db", str(report_db))
    assert res.returncode == 0 and res.stdout.startswith("<!DOCTYPE html>") and res.stderr == ""


def test_report_shows_the_sweep_a_run_belongs_to(report_db: Path, tmp_path: Path) -> None:
    html = _report(report_db, tmp_path / "sweep.html", 1, 2, 3)
    _assert_self_contained(html)
    assert "<h2>Sweeps</h2>" in html and "Throughput X(N) against vus" in html
    assert html.count("<svg class=\"plot\"") == 6
    # The fit table: λ, σ, κ, R², N*, X(N*) and the verdict, for USL and Amdahl.
    for header in ("λ req/s", "σ", "κ", "R²", "N*", "X(N*) req/s", "verdict"):
        assert f">{header}</th>" in html
    assert ">usl</td>" in html and ">amdahl</td>" in html
    assert re.search(r"near-linear|contention-bound|coherency-bound", html)
    # Every level's run is in the levels table, even though only run 3 was asked for.
    with Store(report_db, readonly=True) as store:
        sweep = store.get_sweep(1)
        usl = next(f for f in sweep.fits if f["model"] == "usl")
    assert [run.id for run in sweep.runs] == [3, 4, 5, 6, 7, 8]
    assert "sweep of vus · default (sweep 1)" in html
    if usl["n_star"] is not None and usl["n_star"] < 32 * 4:
        assert "N* ≈" in html


def test_bad_input_is_one_line_and_exit_code_2(report_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.html"
    res = lab_report("1", "9", "-o", str(out), "--db", str(report_db))
    assert res.returncode == 2
    assert res.stderr == f"{report_db}: no run with id 9\n"
    assert not out.exists()
    missing = tmp_path / "nope.db"
    res = lab_report("1", "-o", str(out), "--db", str(missing))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and str(missing) in res.stderr
    assert not missing.exists() and not out.exists()
    res = lab_report("1", "-o", str(tmp_path / "no-dir" / "r.html"), "--db", str(report_db))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "does not exist" in res.stderr
    res = lab_report("-o", str(out), "--db", str(report_db))
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_screenshot_in_headless_chromium_shows_the_charts(report_db: Path, tmp_path: Path) -> None:
    _chromium_or_skip()
    profiles = tmp_path / "profiles"
    profiles.mkdir()

    # Runs 1 and 2 and a sweep level: two rows of time-series charts, each showing both
    # runs' lines, then a third row, the sweep curves in run 3's colour. (One page for both:
    # a report of runs 1 and 2 alone has the four time-series charts only, see
    # test_report_of_two_runs_is_one_self_contained_file.)
    page = tmp_path / "sweep.html"
    _report(report_db, page, 1, 2, 3)
    shot = tmp_path / "sweep.png"
    screenshot(page, shot, 1200, 2400, timeout=45, profile_parent=profiles)
    _no_browser_left(profiles)
    pixels = read_png(shot)
    assert pixels.shape == (2400, 1200, 3)
    not_white = (pixels.min(axis=2) < 245).mean()
    assert not_white > 0.02, f"the screenshot is almost blank ({not_white:.1%} of it is not white)"
    bands = plot_bands(pixels, PLOT_BG)
    assert len(bands) == 3, f"expected 3 rows of charts (6 charts), found plot areas at rows {bands}"
    for top, bottom in bands[:2]:
        for i in (0, 1):
            drawn = count_color(pixels[top:bottom], run_color(i))
            # A 2 s run's line crosses half a plot (~260 px × 2.5 px wide) in each chart.
            assert drawn > 150, (f"run {i + 1}'s colour {run_color(i)}: {drawn} px in the charts "
                                 f"at rows {top}–{bottom}")
    top, bottom = bands[2]
    # Six measured dots, the fitted USL curve and N*, R(N) and p99 lines.
    drawn = count_color(pixels[top:bottom], run_color(2))
    assert drawn > 600, f"sweep charts: {drawn} px of {run_color(2)}"
