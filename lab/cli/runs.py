"""``lab runs``, ``lab show RUN_ID`` and ``lab compare RUN_ID...``: stored runs listed, one
run in full, runs side by side. They only read the results database."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from lab import session
from lab.cli.common import (
    db_option,
    fail,
    format_option,
    lab_command,
    open_readonly,
    run_format_option,
    stdout_console,
)
from lab.cli.output import print_runs, repeat_groups
from lab.errors import ExitCode, UnknownRunError
from lab.ids import RUN_ID


@lab_command("runs")
@click.option("--experiment", help="Only runs of this experiment.")
@click.option("--limit", type=click.IntRange(1, 2**63 - 1), help="At most this many, newest first.")
@db_option
@format_option
def runs_cmd(experiment: str | None, limit: int | None, db_path: str, fmt: str) -> None:
    """List stored runs, newest first."""
    from lab.report.json_report import runs_json
    from lab.report.table import runs_table

    with open_readonly(db_path) as store:
        runs = store.list_runs(experiment=experiment, limit=limit)
        known = store.experiments() if not runs and experiment is not None else []
    if not runs and fmt == "table":
        # An empty table's header would read as a listing that went wrong.
        if experiment is None:
            click.echo(f"no runs in {db_path}")
        else:
            stored = f"; stored experiments: {', '.join(known)}" if known else ""
            click.echo(f"no runs of experiment {experiment!r} in {db_path}{stored}")
        return
    if fmt == "json":
        doc = runs_json(runs)
        for entry, run in zip(doc["runs"], runs, strict=True):
            # Additive: which sweep a run is a level of (runs.sweep_id / runs.sweep_level), or null.
            entry["sweep_id"] = run.sweep_id
            entry["sweep_level"] = run.sweep_level
        click.echo(json.dumps(doc, indent=2))
    else:
        stdout_console().print(runs_table(runs))


@lab_command()
@click.argument("run_id", type=RUN_ID)
@db_option
@format_option
def show(run_id: int, db_path: str, fmt: str) -> None:
    """Show one run: its facts, summary, errors, stages and per-second series."""
    from lab.report.fleet import decisions_table, fleet_json, replicas_table
    from lab.report.json_report import series_json, stages_json
    from lab.report.table import run_details, series_table, stages_table

    with open_readonly(db_path) as store:
        try:
            run_rec = store.get_run(run_id)
        except UnknownRunError as exc:
            fail(f"{db_path}: {exc}")
        intervals = store.intervals(run_id)
        errors = store.errors(run_id)
        samples = store.target_samples(run_id)
        stages = session.stages_of(store, [run_rec]).get(run_id)
        fleet = session.fleets_of(store, [run_rec]).get(run_id)
    if fmt == "json":
        doc = series_json(run_rec, intervals, samples)
        if stages:
            doc["stages"] = stages_json(stages)
        if fleet is not None:
            doc.update(fleet_json(fleet))
        click.echo(json.dumps(doc, indent=2))
        return
    console = stdout_console()
    console.print(run_details(run_rec, errors))
    if stages:
        console.print(stages_table(run_rec, stages))
    if fleet is not None:
        console.print(replicas_table(run_rec, fleet))
        if fleet.decisions:
            console.print(decisions_table(run_rec, fleet.decisions))
    console.print(series_table(run_rec, intervals, samples,
                               replica_counts=fleet.counts if fleet is not None else ()))


@lab_command()
@click.argument("run_ids", type=RUN_ID, nargs=-1)
@click.option("--baseline", "baseline_id", type=RUN_ID, metavar="RUN_ID",
              help="Compare against this run (and its --repeat siblings): a change is flagged "
                   "only when it lies outside the measured spread.")
@click.option("--threshold", "thresholds", multiple=True, metavar="EXPR",
              help="Check every run against it, e.g. 'p95<200ms' (repeatable).")
@click.option("--fail-on-regression", is_flag=True,
              help="With --baseline: exit 1 when a figure got worse beyond the noise.")
@db_option
@run_format_option
def compare(run_ids: Sequence[int], baseline_id: int | None, thresholds: Sequence[str],
            fail_on_regression: bool, db_path: str, fmt: str) -> None:
    """Put stored runs side by side, with deltas against the first one (or --baseline).

    With --baseline, each other run (or group of --repeat runs) is also checked figure by
    figure against the baseline's measured spread: better, worse, or within noise.
    """
    from lab.analysis.thresholds import evaluate

    checks = session.parse_thresholds(thresholds)
    if fail_on_regression and baseline_id is None:
        fail("lab compare: --fail-on-regression needs --baseline RUN_ID (the run to check others against)")
    if not run_ids and baseline_id is None:
        fail("lab compare: give RUN_IDs to compare (and/or --baseline RUN_ID)")
    with open_readonly(db_path) as store:
        try:
            ids = list(run_ids)
            if baseline_id is not None:
                base = store.get_run(baseline_id)
                group = base.settings.repeat_group
                siblings = [r.id for r in store.list_runs(base.experiment)
                            if group and r.settings.repeat_group == group]
                base_ids = sorted(set(siblings) | {baseline_id})
                ids = base_ids + [i for i in ids if i not in base_ids]
            runs = store.get_runs(ids)
        except UnknownRunError as exc:
            fail(f"{db_path}: {exc}")
        stages = session.stages_of(store, runs)
        fleets = session.fleets_of(store, runs)
        slo = session.slo_of(store, runs)
        changes: list[tuple[Any, list[Any]]] = []
        if baseline_id is not None:
            from lab.analysis.noise import compare as noise_compare

            intervals = {run.id: store.intervals(run.id) for run in runs}
            groups = repeat_groups(runs)
            base_group = next(g for g in groups if any(r.id == baseline_id for r in g))
            for group in groups:
                if group is not base_group:
                    changes.append((group, noise_compare(base_group, group, intervals)))
    names = sorted({r.experiment for r in runs})
    results = evaluate(checks, runs) if checks else []
    note = ""
    if len(names) > 1:
        ids_of = {name: [str(r.id) for r in runs if r.experiment == name]
                  for name in dict.fromkeys(r.experiment for r in runs)}
        note = ("note: these runs come from different experiments ("
                + "; ".join(f"{name}: run{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
                            for name, ids in ids_of.items())
                + "): their targets and loads may differ, so a change is not the variant's alone")
    print_runs(session.RunReport(" vs ".join(names), tuple(runs), stages=stages, thresholds=tuple(results),
                                 changes=tuple(changes), note=note, fleets=fleets, slo=slo), fmt)
    if any(not r.passed for r in results):
        sys.exit(ExitCode.RUN_FAILED)
    if fail_on_regression and any(c.verdict == "worse" for _g, found in changes for c in found):
        click.echo("lab: a figure got worse beyond the measured noise", err=True)
        sys.exit(ExitCode.RUN_FAILED)
