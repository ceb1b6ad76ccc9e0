"""Runs on stdout, in the format asked for: the side-by-side table (with the stage, repeat,
change, threshold and skipped-variant tables under it), JSON, CSV, Markdown or JUnit; and
stored sweeps as tables and a plot. Used by ``lab run`` and ``lab compare`` (runs) and
``lab sweep`` (sweeps).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from lab.cli.common import StdoutClosed, stdout_console, stdout_to_devnull


def stages_of(store: Any, runs: Sequence[Any]) -> dict[int, list[Any]]:
    """Per-stage figures of the runs whose load has more than one stage."""
    from lab.analysis.stages import stage_figures

    out = {}
    for run in runs:
        load = run.settings.load
        if len(load.stages) > 1:
            user_levels = [(e.t_s, e.level) for e in store.run_events(run.id) if e.reason == "user"]
            out[run.id] = stage_figures(store.intervals(run.id), load, store.target_samples(run.id),
                                        user_levels)
    return out


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


def print_runs(experiment: str, runs: Sequence[Any], fmt: str,
                skipped: Sequence[dict[str, str]] = (), look_for: str = "",
                stages: dict[int, list[Any]] | None = None,
                sweeps: Sequence[tuple[int, str, Any]] = (),
                results: Sequence[Any] = (),
                repeat_intervals: dict[int, list[Any]] | None = None,
                changes: Sequence[tuple[Any, list[Any]]] = (), note: str = "") -> None:
    """Print runs in ``fmt`` on stdout (see ``write_runs``); ``note``: a line above the
    table (table format only).

    A reader that closes stdout early (``lab run ... | head -40``) ends the output, not
    the command: the rest is dropped and the caller goes on to the exit code its runs and
    thresholds give. (click turns a BrokenPipeError it sees into exit 1, "a run failed".)
    """
    try:
        write_runs(experiment, runs, fmt, skipped, look_for, stages, sweeps, results,
                    repeat_intervals, changes, note)
    except (BrokenPipeError, StdoutClosed):
        stdout_to_devnull()


def write_runs(experiment: str, runs: Sequence[Any], fmt: str,
                skipped: Sequence[dict[str, str]], look_for: str,
                stages: dict[int, list[Any]] | None,
                sweeps: Sequence[tuple[int, str, Any]],
                results: Sequence[Any],
                repeat_intervals: dict[int, list[Any]] | None,
                changes: Sequence[tuple[Any, list[Any]]], note: str = "") -> None:
    from lab.report.json_report import experiment_json, stages_json
    from lab.report.table import (
        comparison_table,
        look_for_text,
        skipped_text,
        stages_table,
        target_table,
    )

    stages = stages or {}
    if fmt == "json":
        doc = experiment_json(experiment, list(runs))
        for entry in doc["runs"]:
            if entry["id"] in stages:
                entry["stages"] = stages_json(stages[entry["id"]])
        if skipped:
            doc["skipped"] = list(skipped)
        if sweeps:
            doc["sweeps"] = [{"id": sweep_id, "variant": variant, **analysis.as_dict()}
                             for sweep_id, variant, analysis in sweeps]
        if results:
            doc["thresholds"] = [r.as_dict() for r in results]
            doc["thresholds_passed"] = all(r.passed for r in results)
        if repeat_intervals is not None:
            doc["repeats"] = [repeat_json(group, repeat_intervals) for group in repeat_groups(runs)]
        if changes:
            doc["changes"] = [{"run_ids": [r.id for r in group], "variant": group[0].variant,
                               "figures": [c.as_dict() for c in found]} for group, found in changes]
        click.echo(json.dumps(doc, indent=2))
        return
    if fmt in ("csv", "markdown", "junit"):
        from lab.report import formats

        if fmt == "csv":
            click.echo(formats.to_csv(list(runs)), nl=False)
        elif fmt == "markdown":
            click.echo(formats.to_markdown(experiment, list(runs), list(results)), nl=False)
        else:
            click.echo(formats.to_junit(experiment, list(runs), list(results)), nl=False)
        return
    console = stdout_console()
    if note:
        console.print(note, highlight=False, markup=False)
    if sweeps:
        print_sweeps(sweeps)
    elif runs:
        console.print(comparison_table(list(runs)))
        extra = target_table(list(runs))
        if extra is not None:
            console.print(extra)
        for run in runs:
            if stages.get(run.id):
                console.print(stages_table(run, stages[run.id]))
    if repeat_intervals is not None:
        from lab.report.table import repeats_table

        console.print(repeats_table(repeat_groups(runs), repeat_intervals))
    for group, found in changes:
        from lab.report.table import changes_table

        console.print(changes_table(group, found))
    if results:
        from lab.report.table import thresholds_text

        console.print(thresholds_text(results))
    if skipped:
        console.print(skipped_text(skipped))
    if look_for and runs:
        console.print(look_for_text(look_for))
