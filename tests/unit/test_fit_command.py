"""``lab fit FILE.csv`` (lab.cli.fit, lab.report.fit_report) and its CSV reader
(lab.analysis.fitdata), in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab.analysis.fitdata import FitDataError, read_fit_csv
from lab.analysis.usl import usl_throughput
from lab.cli.fit import fit
from lab.errors import ExitCode
from lab.report.fit_report import render_plot
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
EXAMPLE = DATA / "usl_example.csv"  # λ = 1000, σ = 0.05, κ = 0.002 at N = 1…64, with ±1 % noise
LEVELS = [1, 2, 4, 8, 16, 32, 64]


def _exact_csv(tmp_path: Path, header: str = "concurrency,throughput", sep: str = ",") -> Path:
    rows = [header] + [f"{n}{sep}{x:.6f}" for n, x in
                       zip(LEVELS, usl_throughput(LEVELS, 1000.0, 0.05, 0.002), strict=True)]
    path = tmp_path / "exact.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(fit, list(args))
    return res.exit_code, res.stdout, res.stderr


# --------------------------------------------------------------------------- JSON and table


def test_json_has_the_contract_keys_and_recovers_the_parameters(tmp_path: Path) -> None:
    code, out, err = _run(str(_exact_csv(tmp_path)), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    for key in ("lambda", "sigma", "kappa", "r2", "n_star", "x_max"):
        assert key in doc
    assert doc["model"] == "usl"
    assert doc["lambda"] == pytest.approx(1000.0, rel=0.01)
    assert doc["sigma"] == pytest.approx(0.05, rel=0.01)
    assert doc["kappa"] == pytest.approx(0.002, rel=0.01)
    assert doc["n_star"] == pytest.approx((0.95 / 0.002) ** 0.5, rel=0.01)
    assert doc["r2"] == pytest.approx(1.0, abs=1e-6)
    assert doc["points"] == 7
    assert "beyond N* ≈ 22" in doc["verdict"]
    amdahl = doc["amdahl"]
    assert amdahl["model"] == "amdahl" and amdahl["kappa"] == 0.0 and amdahl["n_star"] is None
    assert amdahl["x_max_kind"] == "asymptote"


def test_json_model_choice() -> None:
    code, out, _ = _run(str(EXAMPLE), "--format", "json", "--model", "usl")
    assert code == 0 and "amdahl" not in json.loads(out)
    code, out, _ = _run(str(EXAMPLE), "--format", "json", "--model", "amdahl")
    doc = json.loads(out)
    assert code == 0 and doc["model"] == "amdahl" and doc["kappa"] == 0.0 and doc["n_star"] is None
    assert doc["x_max"] == pytest.approx(doc["lambda"] / doc["sigma"])


def test_json_is_standard_json_without_nan() -> None:
    code, out, _ = _run(str(EXAMPLE), "--format", "json")
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_table_output() -> None:
    code, out, err = _run(str(EXAMPLE))
    assert code == 0, err
    for text in ("λ", "σ", "κ", "R²", "N*", "X(N*)", "USL", "Amdahl", "±", "(fixed)", "coherency-bound",
                 "adding more lowers throughput", "Better fit by R²: USL"):
        assert text in out, text
    assert "21.7" in out  # N* of the noisy example
    assert err == ""
    assert "measured" not in out  # not a terminal and no --plot: no plot
    assert max(len(line) for line in out.splitlines()) <= 80


def test_plot_on_request_fits_80_columns_and_marks_n_star() -> None:
    code, out, err = _run(str(EXAMPLE), "--plot")
    assert code == 0, err
    assert "measured" in out and "N*≈22" in out and "concurrency N" in out
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    assert max(len(line) for line in out.splitlines()) <= 80


def test_no_plot_with_json_even_when_asked() -> None:
    code, out, _ = _run(str(EXAMPLE), "--format", "json", "--plot")
    assert code == 0 and json.loads(out)


def test_render_plot_directly_without_a_terminal() -> None:
    from lab.analysis.usl import fit_amdahl, fit_usl

    n, x = read_fit_csv(EXAMPLE)
    text = render_plot(n, x, {"usl": fit_usl(n, x), "amdahl": fit_amdahl(n, x)}, width=60, color=False)
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "USL" in text and "Amdahl" in text


def test_help_text() -> None:
    res = CliRunner().invoke(fit, ["--help"])
    assert res.exit_code == 0
    assert "Universal Scalability Law" in res.stdout and "--format" in res.stdout and "--model" in res.stdout


# --------------------------------------------------------------------------- bad data


BAD = [
    ("non-numeric", "concurrency,throughput\n1,10\n2,abc\n3,30\n4,40\n5,50\n6,60\n",
     "bad.csv:3: column 'throughput': 'abc' is not a number"),
    ("negative throughput", "concurrency,throughput\n1,10\n2,20\n3,-30\n4,40\n5,50\n6,60\n",
     "bad.csv:4: column 'throughput': negative throughput -30"),
    ("negative concurrency", "n,x\n1,10\n-2,20\n3,30\n4,40\n5,50\n6,60\n",
     "bad.csv:3: column 'n': negative concurrency -2"),
    ("zero concurrency", "concurrency,throughput\n0,0\n1,10\n2,20\n3,30\n4,40\n5,50\n",
     "bad.csv:2: column 'concurrency': concurrency 0: must be positive"),
    ("not finite", "concurrency,throughput\n1,10\n2,nan\n3,30\n4,40\n5,50\n6,60\n",
     "bad.csv:3: column 'throughput': 'nan' is not a finite number"),
    ("empty cell", "concurrency,throughput\n1,10\n2,\n3,30\n4,40\n5,50\n6,60\n",
     "bad.csv:3: column 'throughput': empty cell"),
    ("short row", "concurrency,throughput\n1,10\n2\n3,30\n4,40\n5,50\n6,60\n",
     "bad.csv:3: column 'throughput': missing value"),
    ("fewer than 6", "concurrency,throughput\n1,10\n2,20\n4,40\n8,80\n",
     "bad.csv:5: column 'concurrency': a fit needs at least 6 levels, got 4"),
    ("repeated levels", "concurrency,throughput\n1,10\n1,11\n2,20\n2,21\n4,40\n4,41\n8,80\n8,81\n",
     "a fit needs at least 6 levels, got 4"),
    ("header only", "concurrency,throughput\n", "bad.csv:2: no data rows after the header"),
    ("constant", "concurrency,throughput\n1,50\n2,50\n4,50\n8,50\n16,50\n32,50\n",
     "bad.csv:2: column 'throughput': throughput is constant (50 on every row, lines 2–7)"),
    ("missing throughput column", "concurrency,latency\n1,10\n2,20\n",
     "bad.csv:1: no throughput column in the header (found 'concurrency', 'latency'"),
    ("missing concurrency column", "time,throughput\n1,10\n2,20\n",
     "bad.csv:1: no concurrency column in the header"),
    ("empty file", "", "bad.csv:1: empty file"),
    ("blank lines only", "\n\n  \n", "bad.csv:1: empty file"),
]


@pytest.mark.parametrize(("content", "message"), [(c, m) for _, c, m in BAD], ids=[b[0] for b in BAD])
def test_bad_data_is_one_line_on_stderr_and_exit_code_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    for fmt in ("table", "json"):
        code, out, err = _run(str(path), "--format", fmt)
        assert code == ExitCode.BAD_INPUT == 2
        assert out == ""
        assert len(err.splitlines()) == 1, err
        assert message in err, err
        assert err.startswith(str(path))


def test_missing_file_and_directory_are_bad_input(tmp_path: Path) -> None:
    code, out, err = _run(str(tmp_path / "nope.csv"))
    assert (code, out) == (2, "") and err.strip().endswith("nope.csv: file not found")
    code, out, err = _run(str(tmp_path))
    assert (code, out) == (2, "") and "is a directory" in err


def test_not_utf8_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00concurrency")
    code, _, err = _run(str(path))
    assert code == 2 and "not UTF-8 text" in err


def test_bad_input_exits_2_under_non_standalone_click_as_lab_cli_main_runs_it(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]
                                                                            ) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("concurrency,throughput\n1,10\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        fit.main([str(path)], prog_name="lab fit", standalone_mode=False)
    assert info.value.code == ExitCode.BAD_INPUT
    assert "a fit needs at least 6 levels, got 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- CSV reader


@pytest.mark.parametrize("header", [
    "concurrency,throughput", "CONCURRENCY,Throughput", "n,x", "N,X(N)", "vus,rps", "VUs,RPS",
    "workers,throughput_rps", "Concurrency (VUs),Throughput (req/s)", "threads,tps", "users,req/s",
])
def test_header_synonyms(tmp_path: Path, header: str) -> None:
    n, x = read_fit_csv(_exact_csv(tmp_path, header))
    assert n == LEVELS and len(x) == 7 and x[0] == pytest.approx(1000.0)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated(tmp_path: Path, sep: str) -> None:
    n, _ = read_fit_csv(_exact_csv(tmp_path, f"concurrency{sep}throughput", sep=sep))
    assert n == LEVELS


def test_extra_columns_comments_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text("\ufeff# from wrk, 30 s per level\nrun,p99_ms,throughput,vus\n\n"
                    + "".join(f"r{i},{i * 1.5},{100 * i},{i}\n" for i in range(1, 8)), encoding="utf-8")
    n, x = read_fit_csv(path)
    assert n == [1, 2, 3, 4, 5, 6, 7] and x == [100 * i for i in range(1, 8)]


def test_preferred_column_wins_when_two_synonyms_are_present(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("n,concurrency,x,throughput\n"
                    + "".join(f"{i * 100},{i},0,{10 * i}\n" for i in range(1, 8)), encoding="utf-8")
    n, x = read_fit_csv(path)
    assert n == list(range(1, 8)) and x == [10 * i for i in range(1, 8)]


def test_fit_data_error_fields(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("concurrency,throughput\n1,x1\n", encoding="utf-8")
    with pytest.raises(FitDataError) as info:
        read_fit_csv(path)
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), 2, "throughput")
    assert isinstance(err, ValueError)


# --------------------------------------------------------------------------- falling data, extreme values


def _csv(tmp_path: Path, rows: list[tuple[float, float]], name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text("concurrency,throughput\n" + "".join(f"{n!r},{x!r}\n" for n, x in rows), encoding="utf-8")
    return path


FALLING = [(1, 1000.0), (2, 500.0), (4, 250.0), (8, 125.0), (16, 62.0), (32, 31.0)]


def test_falling_data_reports_no_peak_below_the_measured_range(tmp_path: Path) -> None:
    path = _csv(tmp_path, FALLING)
    code, out, err = _run(str(path), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    for key in ("lambda", "sigma", "kappa", "r2", "n_star", "x_max"):
        assert key in doc  # the contract keys stay, null where not meaningful
    assert doc["n_star"] is None
    assert doc["x_max"] <= 1.01 * 1000.0 and doc["x_max_kind"] == "n1"
    assert "retrograde from the start" in doc["verdict"]
    assert "N* lies below the measured range" in doc["verdict"]
    code, out, err = _run(str(path), "--model", "usl")
    assert code == 0 and err == ""
    n_star_row = next(line for line in out.splitlines() if line.startswith(" N*"))
    assert n_star_row.split("│")[-1].strip() == "none"
    assert "1000 (at N = 1)" in out and "throughput falls from the first level" in out


def test_extreme_values_print_clean_numbers_without_warnings(tmp_path: Path) -> None:
    import warnings

    huge = _csv(tmp_path, [(1, 1e300), (2, 1.9e300), (4, 3e300), (8, 4e300), (16, 4.2e300), (32, 3e300)])
    overflow = _csv(tmp_path, [(1, 1e308), (2, 1.7e308), (4, 1.7e308), (8, 1.6e308), (16, 1.5e308),
                               (32, 1e308)], name="overflow.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = _run(str(huge), "--plot")
        assert code == 0 and err == ""
        assert "1.007e+300" in out and "R²" in out
        assert max(len(line) for line in out.splitlines()) <= 80  # no 300-digit number
        code, out, err = _run(str(overflow), "--format", "json")
        assert code == ExitCode.BAD_INPUT and out == "" and len(err.splitlines()) == 1
        assert err.startswith(f"{overflow}: the USL fit did not converge to finite numbers")
    assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------------- verdict, JSON and plot agree


def test_zero_throughput_at_most_levels_is_bad_input(tmp_path: Path) -> None:
    path = _csv(tmp_path, [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (32, 5)])
    for fmt in ("table", "json"):
        code, out, err = _run(str(path), "--format", fmt)
        assert (code, out) == (ExitCode.BAD_INPUT, "")
        assert err == (f"{path}: throughput is 0 at 5 of 6 levels (N = 1, 2, 4, 8, 16): a fit needs at "
                       f"least 6 levels with throughput above 0, got 1\n")


def test_a_peak_beyond_the_measured_range_is_one_story_in_json_and_verdict(tmp_path: Path) -> None:
    path = _csv(tmp_path, [(0.5, 50.0), (1, 100.0), (2, 190.0), (4, 350.0), (8, 600.0), (16, 900.0)])
    code, out, err = _run(str(path), "--format", "json", "--model", "usl")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["x_max_kind"] == "peak" and (doc["n_min"], doc["n_max"]) == (0.5, 16)
    assert doc["n_star"] == pytest.approx(39.6, abs=0.1) and doc["n_star"] > doc["n_max"]
    # The verdict names the same maximum as x_max, and says it is a forecast.
    assert f"at ≈ {doc['x_max']:,.0f}/s at N* ≈ 40, beyond the measured range (N ≤ 16)" in doc["verdict"]
    assert "λ/σ" in doc["verdict"] and "levels off" in doc["verdict"]


def _plot_rows(text: str) -> list[str]:
    """The rows of a plotext plot's box (y-axis label rows and the rows between them)."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[top + 1:bottom]


def test_plot_legend_is_under_the_plot_and_the_y_axis_fits_the_data() -> None:
    n, x = read_fit_csv(EXAMPLE)
    from lab.analysis.usl import fit_amdahl, fit_usl

    text = render_plot(n, x, {"usl": fit_usl(n, x), "amdahl": fit_amdahl(n, x)}, width=80, color=False)
    rows = _plot_rows(text)
    assert not any(word in row for row in rows for word in ("measured", "USL", "Amdahl"))
    assert text.splitlines()[-1] == "● measured   ⣀⣀ USL fit   ·· Amdahl fit   │ N*≈22, the USL's peak"
    # The top y label is the data's top (the USL's X(N*) ≈ 7,401) plus a small margin, not
    # room for a legend (it was 10,092).
    y_top = float(rows[0].split("┤")[0])
    assert max(x) < y_top <= 1.06 * 7401.0
    assert sum(row.count("●") for row in rows) == len(n)  # every point over the curves


def test_fitted_curves_start_at_the_smallest_n_and_never_below_1() -> None:
    from lab.report.fit_report import curve_span

    assert curve_span([0.5, 1, 2, 4, 8, 16], None) == (1.0, 16)
    assert curve_span([4, 6, 8, 12, 16, 24, 32], None) == (4, 32)
    assert curve_span([1, 2, 4, 8, 16], 40.0) == (1.0, pytest.approx(48.0))  # N* just beyond: shown
    assert curve_span([1, 2, 4, 8, 16], 400.0) == (1.0, 16)  # far beyond: not
