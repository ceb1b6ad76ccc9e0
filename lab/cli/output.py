"""Runs on stdout, in the format asked for: the side-by-side table (with the stage, repeat,
change, threshold and skipped-variant tables under it), JSON, CSV, Markdown or JUnit; and
stored sweeps as tables and a plot. Used by ``lab run`` and ``lab compare`` (runs) and
``lab sweep`` (sweeps).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from lab.cli.common import StdoutClosed, stdout_console, stdout_to_devnull

if TYPE_CHECKING:
    from lab.session import RunReport


def repeat_groups(runs: Sequence[Any]) -> list[list[Any]]:
    """Runs grouped by repetition group (a run without one is its own group), in order."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        key = run.settings.repeat_group or f"run-{run.id}"
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def repeat_json(group: Sequence[Any], intervals: dict[int, list[Any]]) -> dict[str, Any]:
    from lab.analysis.noise import FIGURES, spread

    out: dict[str, Any] = {"variant": group[0].variant, "run_ids": [r.id for r in group],
                           "runs": len(group)}
    for fig in FIGURES:
        sp = spread(fig, group, intervals)
        out[fig.name] = None if sp is None else {"median": sp.median, "low": sp.low, "high": sp.high}
    return out


def print_sweeps(sweeps: Sequence[tuple[int, str, Any]]) -> None:
    from lab.report.sweep_report import fits_table, levels_table, sweep_plot, verdicts

    console = stdout_console()
    pairs = [(variant, analysis) for _id, variant, analysis in sweeps]
    for sweep_id, variant, analysis in sweeps:
        console.print(levels_table(f"{variant} (sweep {sweep_id})", analysis))
    fits = fits_table(pairs)
    if fits is not None:
        console.print(fits)
    console.print(verdicts(pairs))
    width = min(console.width, 100) - 2
    # Rich would wrap or re-style the plot's own text; write it as it is.
    click.echo(sweep_plot(pairs, width=max(width, 40), height=20, color=sys.stdout.isatty()))


def print_runs(report: RunReport, fmt: str) -> None:
    """Print the report's runs in ``fmt`` on stdout (see ``write_runs``).

    A reader that closes stdout early (``lab run ... | head -40``) ends the output, not
    the command: the rest is dropped and the caller goes on to the exit code its runs and
    thresholds give. (click turns a BrokenPipeError it sees into exit 1, "a run failed".)
    """
    try:
        write_runs(report, fmt)
    except (BrokenPipeError, StdoutClosed):
        stdout_to_devnull()


def write_runs(report: RunReport, fmt: str) -> None:
    """Write the report on stdout: ``json`` (the ``lab run --format json`` document),
    ``csv``, ``markdown``, ``junit``, or ``table`` (the side-by-side table with the stage,
    repeat, change, threshold and skipped-variant tables under it; ``report.note`` above)."""
    from lab.report.fleet import decisions_table, fleet_json, replicas_table
    from lab.report.json_report import experiment_json, stages_json
    from lab.report.table import (
        comparison_table,
        look_for_text,
        skipped_text,
        stages_table,
        target_table,
    )

    runs = list(report.runs)
    stages = report.stages
    skipped = [skip.as_dict() for skip in report.skipped]
    results = list(report.thresholds)
    repeat_intervals = report.repeat_intervals
    if fmt == "json":
        doc = experiment_json(report.experiment, runs)
        for entry in doc["runs"]:
            if entry["id"] in stages:
                entry["stages"] = stages_json(stages[entry["id"]])
            if entry["id"] in report.fleets:
                entry.update(fleet_json(report.fleets[entry["id"]]))
            if entry["id"] in report.slo:
                entry["slo"] = report.slo[entry["id"]].as_dict()
        if skipped:
            doc["skipped"] = skipped
        if report.sweeps:
            doc["sweeps"] = [{"id": sweep_id, "variant": variant, **analysis.as_dict()}
                             for sweep_id, variant, analysis in report.sweeps]
        if results:
            doc["thresholds"] = [r.as_dict() for r in results]
            doc["thresholds_passed"] = all(r.passed for r in results)
        if repeat_intervals is not None:
            doc["repeats"] = [repeat_json(group, repeat_intervals) for group in repeat_groups(runs)]
        if report.changes:
            doc["changes"] = [{"run_ids": [r.id for r in group], "variant": group[0].variant,
                               "figures": [c.as_dict() for c in found]} for group, found in report.changes]
        click.echo(json.dumps(doc, indent=2))
        return
    if fmt in ("csv", "markdown", "junit"):
        from lab.report import formats

        if fmt == "csv":
            click.echo(formats.to_csv(runs, report.fleets), nl=False)
        elif fmt == "markdown":
            click.echo(formats.to_markdown(report.experiment, runs, results, report.fleets), nl=False)
        else:
            click.echo(formats.to_junit(report.experiment, runs, results), nl=False)
        return
    console = stdout_console()
    if report.note:
        console.print(report.note, highlight=False, markup=False)
    if report.sweeps:
        print_sweeps(report.sweeps)
    elif runs:
        console.print(comparison_table(runs))
        extra = target_table(runs)
        if extra is not None:
            console.print(extra)
        for run in runs:
            if stages.get(run.id):
                console.print(stages_table(run, stages[run.id]))
            fleet = report.fleets.get(run.id)
            if fleet is not None:
                console.print(replicas_table(run, fleet))
                if fleet.decisions:
                    console.print(decisions_table(run, fleet.decisions))
    if report.slo and runs:
        from lab.report.fleet import slo_text

        console.print(slo_text(runs, report.slo))
    if repeat_intervals is not None:
        from lab.report.table import repeats_table

        console.print(repeats_table(repeat_groups(runs), repeat_intervals))
    for group, found in report.changes:
        from lab.report.table import changes_table

        console.print(changes_table(group, found))
    if results:
        from lab.report.table import thresholds_text

        console.print(thresholds_text(results))
    if skipped:
        console.print(skipped_text(skipped))
    if report.look_for and runs:
        console.print(look_for_text(report.look_for))
