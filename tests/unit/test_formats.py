"""CSV, markdown and JUnit renderings (lab.report.formats) and the ``lab export`` files
against golden files.

Golden files live in tests/golden/ and are compared byte for byte. After an intended
change of a format, regenerate them with ``LAB_UPDATE_GOLDEN=1 pytest tests/unit/test_formats.py``
and review the diff.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from lab.analysis.thresholds import ThresholdResult, evaluate
from lab.figures import Latency, Summary
from lab.report import formats
from lab.store import IntervalRow, ResourceRow, RunRecord
from lab.thresholds import parse_threshold
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"


# --------------------------------------------------------------------------- fixtures


def _latency(p50: float, p90: float, p95: float, p99: float, mx: float, mean: float,
             count: int) -> Latency:
    return Latency(p50=p50, p90=p90, p95=p95, p99=p99, max=mx, mean=mean, count=count)


def _summary(**kw: object) -> Summary:
    base: dict[str, object] = dict(
        requests=2187, ok=2187, errors=0, dropped=0, interrupted=0, bytes=4_374_000, window_s=17.03,
        throughput_rps=128.4217, attempts_rps=128.4217,
        latency_ms=_latency(246.0, 270.0, 281.0, 287.0, 291.0, 247.2, 2187),
        latency_all_ms=_latency(246.0, 270.0, 281.0, 287.0, 291.0, 247.2, 2187),
        service_ms=_latency(246.0, 270.0, 281.0, 287.0, 291.0, 247.2, 2187),
        error_rate=0.0, target_cpu_s_per_1k=7.779, target_peak_rss_bytes=96_256_000,
    )
    base.update(kw)
    return Summary(**base)  # type: ignore[arg-type]


def _run(run_id: int, variant: str, **kw: object) -> RunRecord:
    base: dict[str, object] = dict(
        id=run_id, experiment="caching", variant=variant, status="completed", reason=None,
        started_at=f"2026-11-29T19:0{run_id}:04.123Z", ended_at=f"2026-11-29T19:0{run_id}:24.456Z",
        duration_s=20.333, config={"load": {"client": "fast", "workers": 2}}, lab_version="0.9.0",
        host={"cores": 8, "memory_bytes": 16 * 2**30, "python": "3.11.9", "platform": "Linux"},
        target_url="http://127.0.0.1:40001", summary=_summary(), title="Caching",
    )
    base.update(kw)
    return RunRecord(**base)  # type: ignore[arg-type]


def _runs() -> list[RunRecord]:
    """Three runs: a generator-bound baseline (httpx, one worker), a cached run with
    errors, and a run that failed before measuring anything (its reason has a pipe, a
    newline, a tag-like word and an ANSI escape, all of which the formats must survive)."""
    return [
        _run(1, "no-cache", config={"load": {"client": "httpx", "workers": 1}},
             summary=_summary(generator_bound=True,
                              generator_bound_reason="generator CPU 97% of a core (limit 90%)")),
        _run(2, "cache", summary=_summary(
            requests=21_034, ok=20_990, errors=44, throughput_rps=1234.567, attempts_rps=1237.157,
            latency_ms=_latency(4.12, 9.8, 12.34, 30.5, 88.0, 5.01, 20_990),
            latency_all_ms=_latency(4.1, 9.8, 12.4, 31.0, 88.0, 5.0, 21_034),
            error_rate=0.0020918, target_cpu_s_per_1k=0.512, target_peak_rss_bytes=101_000_000,
            cache_hit_ratio=0.97125)),
        _run(3, "cache|big", status="failed", summary=None, ended_at="2026-11-29T19:03:05.000Z",
             duration_s=0.877,
             reason="target exited with code 1 before ready:\n  File \"app.py\", in <module>\n"
                    "\x1b[31mValueError: pool size | 0\x1b[0m"),
    ]


def _results() -> list[ThresholdResult]:
    thresholds = [parse_threshold(t) for t in ("p95<50ms", "error_rate<1%", "throughput>500")]
    return evaluate(thresholds, _runs())


def _interval(run_id: int, t: float, ok: int, errors: int = 0, **kw: object) -> IntervalRow:
    base: dict[str, object] = dict(
        run_id=run_id, t_s=t, duration_s=1.0, requests=ok + errors, ok=ok, errors=errors, bytes=ok * 2000,
        dropped=0, interrupted=0, active_vus=32, target_rate=0.0, stage=0,
        errors_by_class={"status_5xx": errors} if errors else {}, histogram=b"h", histogram_all=b"h",
        histogram_service=b"h", p50_ms=4.125, p90_ms=9.5, p95_ms=12.0, p99_ms=30.25, max_ms=88.0,
        in_flight_mean=5.0833333,
    )
    base.update(kw)
    return IntervalRow(**base)  # type: ignore[arg-type]


def _resource(run_id: int, t: float, role: str, **kw: object) -> ResourceRow:
    base: dict[str, object] = dict(
        run_id=run_id, t_s=t, role=role, pid=4242, cpu_percent=87.456, cpu_seconds=12.3456,
        rss_bytes=96_256_000, num_threads=4, num_fds=37, processes=1, detail={},
    )
    base.update(kw)
    return ResourceRow(**base)  # type: ignore[arg-type]


def _export_inputs() -> tuple[list[RunRecord], dict[int, list[IntervalRow]], dict[int, list[ResourceRow]],
                             dict[int, list[tuple[float, str, float]]]]:
    runs = _runs()[:2]
    intervals = {
        1: [_interval(1, 0.0, 128), _interval(1, 1.0, 0, p50_ms=None, p90_ms=None, p95_ms=None,
                                              p99_ms=None, max_ms=None, in_flight_mean=None)],
        2: [_interval(2, 0.0, 1230, errors=4, target_rate=1250.0, active_vus=0, dropped=16, stage=1)],
    }
    resources = {
        1: [_resource(1, 0.0, "target", cpu_percent=None),
            _resource(1, 1.0, "service", pid=5151, detail={"service": "redis"}),
            _resource(1, 1.0, "system", pid=None, rss_bytes=8_000_000_000,
                      detail={"per_core_percent": [50.0, 12.5], "memory_total_bytes": 16 * 2**30})],
        2: [_resource(2, 0.5, "generator", processes=2)],
    }
    samples = {1: [(0.5, "queue_depth", 12.0), (1.5, "job_lag_ms", 340.5)], 2: []}
    return runs, intervals, resources, samples


def _golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/NAME byte for byte (``LAB_UPDATE_GOLDEN=1`` rewrites it)."""
    path = GOLDEN / name
    data = text.encode("utf-8")
    if os.environ.get("LAB_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"{path} missing: run with LAB_UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes()
    if data != expected:
        diff = "".join(difflib.unified_diff(
            expected.decode("utf-8").splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"golden/{name}", tofile="rendered"))
        pytest.fail(f"{name} differs from its golden file (LAB_UPDATE_GOLDEN=1 to accept):\n{diff}")


# --------------------------------------------------------------------------- golden files


def test_csv_golden() -> None:
    _golden("runs.csv", formats.to_csv(_runs()))


def test_markdown_golden() -> None:
    _golden("runs.md", formats.to_markdown("caching", _runs(), _results()))


def test_markdown_without_thresholds_golden() -> None:
    _golden("runs_no_thresholds.md", formats.to_markdown("caching", _runs()[:2]))


def test_junit_golden() -> None:
    _golden("runs.junit.xml", formats.to_junit("caching", _runs(), _results()))


def test_junit_without_thresholds_golden() -> None:
    _golden("runs_no_thresholds.junit.xml", formats.to_junit("caching", _runs()))


def test_export_series_csv_golden() -> None:
    runs, intervals, _resources, _samples = _export_inputs()
    _golden("export_series.csv", formats.series_csv(runs, intervals))


def test_export_resources_csv_golden() -> None:
    runs, _intervals, resources, _samples = _export_inputs()
    _golden("export_resources.csv", formats.resources_csv(runs, resources))


def test_export_targets_csv_golden() -> None:
    runs, _intervals, _resources, samples = _export_inputs()
    _golden("export_targets.csv", formats.targets_csv(runs, samples))


def test_export_json_golden() -> None:
    runs, intervals, resources, samples = _export_inputs()
    _golden("export.json", formats.export_json_text(formats.export_json(runs, intervals, resources, samples)))


# --------------------------------------------------------------------------- CSV


def test_csv_parses_with_the_documented_columns_and_empty_missing_values() -> None:
    text = formats.to_csv(_runs())
    assert "\r" not in text and text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(formats.CSV_COLUMNS)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    no_cache, cache, failed = rows
    assert no_cache["generator_bound"] == "true" and cache["generator_bound"] == "false"
    assert no_cache["client"] == "httpx" and cache["generator_workers"] == "2"
    assert no_cache["cache_hit_ratio"] == ""
    assert float(cache["cache_hit_ratio"]) == pytest.approx(0.97125, abs=1e-4)
    assert float(cache["throughput_rps"]) == pytest.approx(1234.567)
    assert float(cache["p95_ms"]) == pytest.approx(12.34)
    # The failed run: its reason survives as one cell (newlines and all), every figure empty.
    assert failed["status"] == "failed" and failed["reason"].startswith("target exited with code 1")
    assert "\n" in failed["reason"]
    assert all(failed[c] == "" for c in formats.CSV_COLUMNS[7:])


def test_csv_of_no_runs_is_the_header() -> None:
    assert formats.to_csv([]) == ",".join(formats.CSV_COLUMNS) + "\n"


def test_latency_of_a_run_without_successes_is_empty_not_zero() -> None:
    zero = _latency(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    run = _run(9, "all-errors", summary=_summary(ok=0, errors=10, latency_ms=zero, error_rate=1.0))
    row = next(csv.DictReader(io.StringIO(formats.to_csv([run]))))
    assert row["p95_ms"] == "" and row["error_rate"] == "1.0"


# --------------------------------------------------------------------------- markdown


def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of the markdown table's body rows (split on unescaped pipes)."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in rows]


def test_markdown_has_one_table_with_changes_against_the_first_run() -> None:
    md = formats.to_markdown("caching", _runs(), _results())
    assert md.startswith("### caching\n")
    assert md.count("| variant | status |") == 1
    rows = _table_rows(md)
    assert len(rows) == 3 and all(len(r) == 9 for r in rows)  # 8 columns + cache %
    assert rows[0][:3] == ["#1 no-cache", "completed, gen-bound", "128.4"]
    assert rows[1][2] == "1,235 (+861%)"
    assert rows[1][4] == "12.3 (−96%)"  # p95
    assert rows[1][6] == "0.21 (+0.2pp)"  # err %
    # The pipe in the failed run's variant is escaped, so the row keeps its columns.
    assert rows[2][0] == "#3 cache\\|big" and rows[2][1] == "❌ failed"
    assert rows[2][2:] == ["–"] * 7


def test_markdown_thresholds_and_notes() -> None:
    md = formats.to_markdown("caching", _runs(), _results())
    assert "❌ **5 of 9 thresholds failed**" in md
    verdicts = [line for line in md.splitlines() if line.startswith("- ✅") or line.startswith("- ❌")]
    assert len(verdicts) == 9
    assert verdicts[0] == "- ❌ #1 no-cache `p95<50ms`: 281 ms"
    assert "- ✅ #2 cache `p95<50ms`: 12.34 ms" in verdicts
    assert "- ❌ #3 cache|big `throughput>500`: not measured" in verdicts
    notes = md.split("**Notes**")[1]
    assert ("- load from: #1 httpx client, 1 generator worker; #2, #3 fast client, 2 generator workers\n"
            in notes)
    assert "#1 gen-bound" in notes and "generator CPU 97%" in notes
    # The failed run's reason: one line, no control characters, the tag-like word kept visible.
    failed_note = next(line for line in notes.splitlines() if line.startswith("- #3 failed:"))
    assert "in &lt;module&gt;" in failed_note and "ValueError: pool size | 0" in failed_note
    assert "\x1b" not in md and "[31m" not in md
    assert "\n" not in failed_note


def test_markdown_passing_verdict_and_many_thresholds_are_capped() -> None:
    runs = _runs()[1:2] * 1
    results = evaluate([parse_threshold("p99<1s")], runs)
    assert "✅ **all 1 thresholds passed**" in formats.to_markdown("x", runs, results)
    many = [replace(results[0], run_id=i) for i in range(formats.MAX_THRESHOLD_LINES + 5)]
    md = formats.to_markdown("x", runs, many)
    assert "- … and 5 more (0 failed)" in md


# --------------------------------------------------------------------------- JUnit

_TIME = re.compile(r"^[0-9]+(\.[0-9]+)?$")
# The element and attribute rules of Jenkins' JUnit schema (xunit-plugin junit-10.xsd),
# which GitLab's and most CI readers accept too: which children and attributes each
# element may have, and which attributes it must have.
_ALLOWED_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "properties": {"property"},
    "property": set(),
    "testcase": {"skipped", "error", "failure", "system-out", "system-err"},
    "failure": set(), "error": set(), "skipped": set(), "system-out": set(), "system-err": set(),
}
_ALLOWED_ATTRS = {
    "testsuites": {"name", "time", "tests", "failures", "errors"},
    "testsuite": {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp",
                  "hostname", "id", "package", "file", "log", "url"},
    "properties": set(), "property": {"name", "value"},
    "testcase": {"name", "time", "classname", "group"},
    "failure": {"type", "message"}, "error": {"type", "message"}, "skipped": {"type", "message"},
    "system-out": set(), "system-err": set(),
}
_REQUIRED_ATTRS = {"testsuite": {"name", "tests", "failures", "errors"}, "property": {"name", "value"},
                   "testcase": {"name"}}


def _check_junit_schema(element: ET.Element) -> None:
    tag = element.tag
    assert tag in _ALLOWED_ATTRS, f"unknown element <{tag}>"
    assert set(element.attrib) <= _ALLOWED_ATTRS[tag], (tag, element.attrib)
    assert _REQUIRED_ATTRS.get(tag, set()) <= set(element.attrib), (tag, element.attrib)
    if "time" in element.attrib:
        assert _TIME.match(element.attrib["time"]), element.attrib
    for child in element:
        assert child.tag in _ALLOWED_CHILDREN[tag], f"<{child.tag}> inside <{tag}>"
        _check_junit_schema(child)


def _counts(suite: ET.Element) -> tuple[int, int]:
    cases = suite.findall("testcase")
    return len(cases), sum(1 for c in cases if c.find("failure") is not None)


def test_junit_parses_validates_and_counts() -> None:
    text = formats.to_junit("caching", _runs(), _results())
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    root = ET.fromstring(text.encode("utf-8"))
    _check_junit_schema(root)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "caching/no-cache #1", "caching/cache #2", "caching/cache|big #3"]
    # Three thresholds per run; the failed run adds "run completed".
    assert [_counts(s) for s in suites] == [(3, 2), (3, 0), (4, 4)]
    for suite in suites:
        tests, failures = _counts(suite)
        assert suite.get("tests") == str(tests) and suite.get("failures") == str(failures)
        assert suite.get("errors") == "0" and suite.get("skipped") == "0"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("10", "6", "0")
    first = suites[0].findall("testcase")
    assert [c.get("name") for c in first] == ["p95<50ms", "error_rate<1%", "throughput>500"]
    assert {c.get("classname") for c in first} == {"lab.caching.no-cache"}
    failure = first[0].find("failure")
    assert failure is not None
    assert failure.get("type") == "threshold" and failure.get("message") == "p95<50ms: 281 ms"
    assert "p95 < 50 ms" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suites[1].iter("property")}
    assert props["throughput_rps"] == "1234.567" and props["p95_ms"] == "12.34"
    assert props["error_rate"] == "0.002092"
    assert float(props["cache_hit_ratio"] or 0) == pytest.approx(0.97125, abs=1e-4)
    assert suites[0].find("system-out") is not None  # the gen-bound run says so
    run_failed = suites[2].findall("testcase")[-1]
    assert run_failed.get("name") == "run completed"
    failure = run_failed.find("failure")
    assert failure is not None and failure.get("type") == "run failed"
    assert failure.get("message", "").startswith("run failed: target exited with code 1")
    assert "\x1b" not in text and "[31m" not in text and "<module>" in (failure.text or "")


def test_junit_without_thresholds_has_one_case_per_run() -> None:
    root = ET.fromstring(formats.to_junit("caching", _runs()).encode("utf-8"))
    _check_junit_schema(root)
    suites = root.findall("testsuite")
    assert [_counts(s) for s in suites] == [(1, 0), (1, 0), (1, 1)]
    assert all(s.find("testcase").get("name") == "run completed" for s in suites)  # type: ignore[union-attr]
    assert suites[0].find("testcase").get("time") == "20.333"  # type: ignore[union-attr]


def test_junit_of_no_runs_is_an_empty_testsuites() -> None:
    root = ET.fromstring(formats.to_junit("x", []).encode("utf-8"))
    assert root.tag == "testsuites" and root.get("tests") == "0" and list(root) == []


def test_table_golden() -> None:
    """The terminal table (``--format table``), at a fixed 100 columns without colour."""
    from lab.report.table import comparison_table, render, thresholds_text

    runs = _runs()
    text = render(comparison_table(runs), width=100) + render(thresholds_text(_results()), width=100)
    _golden("runs.table.txt", text)


def test_json_golden() -> None:
    """The JSON contract document (``--format json``) of the same runs."""
    from lab.report.json_report import dumps, experiment_json

    doc = experiment_json("caching", _runs())
    doc["thresholds"] = [r.as_dict() for r in _results()]
    doc["thresholds_passed"] = all(r.passed for r in _results())
    _golden("runs.json", dumps(doc) + "\n")


def test_the_documented_json_of_a_run_that_measured_nothing_is_what_the_lab_prints() -> None:
    import json

    from lab.report.json_report import experiment_json

    text = (REPO / "docs" / "json-output.md").read_text()
    assert "<!-- lab-json-unmeasured -->" in text, "docs/json-output.md shows no run that measured nothing"
    block = text.split("<!-- lab-json-unmeasured -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    documented = json.loads(block)
    printed = experiment_json("caching", [_run(3, "cache", status="failed", summary=None)])["runs"][0]
    assert printed["measured"] is documented["measured"] is False
    # Every figure the page shows is the lab's (the summary may carry more keys than shown).
    assert {k: printed["summary"][k] for k in documented["summary"]} == documented["summary"]
    # Numbers where the contract wants numbers: none of the contract's counts, rates or
    # latencies is null.
    for key, value in documented["summary"].items():
        if key not in ("target_cpu_s_per_1k", "target_peak_rss_bytes"):
            assert value is not None, key


def test_threshold_figures_read_as_people_write_them() -> None:
    from lab.report.table import render, thresholds_text

    run = _run(7, "fast", summary=_summary(
        requests=1_000_000, ok=995_000, errors=5_000, throughput_rps=35_210.4, attempts_rps=35_387.3,
        latency_ms=_latency(4.1, 9.8, 12.34, 30.5, 88.0, 5.0, 995_000), error_rate=0.005,
        target_peak_rss_bytes=1_234_567_890))
    results = evaluate([parse_threshold(t) for t in
                        ("throughput>50000", "p95<10ms", "error_rate<0.1%", "errors<100", "rss<1GB")], [run])
    lines = render(thresholds_text(results), width=120).splitlines()
    assert "✗ run 7 (fast) throughput>50000: 35,210 req/s" in lines, lines
    assert "✗ run 7 (fast) p95<10ms: 12.34 ms" in lines, lines
    assert "✗ run 7 (fast) error_rate<0.1%: 0.5 %" in lines, lines
    assert "✗ run 7 (fast) errors<100: 5,000" in lines, lines
    assert "✗ run 7 (fast) rss<1GB: 1,234,567,890 B" in lines, lines
    # The same figures, and the limits, in a CI system's failure message.
    junit = formats.to_junit("caching", [run], results)
    assert "throughput was 35,210 req/s; the threshold requires throughput &gt; 50,000 req/s" in junit
    assert "target_peak_rss_bytes was 1,234,567,890 B; the threshold requires target_peak_rss_bytes" \
        " &lt; 1,000,000,000 B" in junit
    assert not re.search(r"\de[+-]\d", "\n".join(lines) + junit)  # no scientific notation
