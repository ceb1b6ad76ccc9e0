"""Renderers of stored runs: terminal tables (rich) and JSON.

Input is ``lab.store`` dataclasses (``RunRecord``, ``IntervalRow``, ``ErrorRow``); no SQL
here.
"""

from lab.report.json_report import (
    EMPTY_SUMMARY,
    dumps,
    experiment_json,
    run_json,
    runs_json,
    series_json,
)
from lab.report.table import (
    comparison_table,
    format_delta,
    render,
    run_details,
    runs_table,
    series_table,
)

__all__ = [
    "EMPTY_SUMMARY",
    "comparison_table",
    "dumps",
    "experiment_json",
    "format_delta",
    "render",
    "run_details",
    "run_json",
    "runs_json",
    "runs_table",
    "series_json",
    "series_table",
]
