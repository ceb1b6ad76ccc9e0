"""``lab run EXPERIMENT``: run every variant of an experiment in turn, store the runs and
print them side by side.

Before anything starts: thresholds parsed, runs planned (variants, sweep levels,
command-line overrides, repeats), variants whose required services are missing skipped,
open-file budget, database and target imports checked. After: stage figures, sweep
analyses and fits stored, thresholds checked, runs in which nothing was served warned of.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from lab.cli.common import db_option, fail, lab_command, open_writable, run_format_option
from lab.cli.output import print_runs, stages_of
from lab.errors import ExitCode, UnknownVariantError
from lab.plan import RunPlan, check_plans, plan_runs
from lab.spec import (
    LoadSpec,
    check_duration_range,
    check_target_importable,
    describe_error,
    dotted_path,
    experiment_dirs,
    find_experiment,
    load_experiment,
    parse_duration,
)


@lab_command()
@click.argument("experiment")
@click.option("--variant", "variants", multiple=True, metavar="NAME",
              help="Run only this variant (repeatable).")
@click.option("--duration", metavar="DURATION", help="Run length, e.g. 20s or 2m (scales stages).")
@click.option("--warmup", metavar="DURATION", help="Warm-up excluded from summaries, e.g. 3s.")
@click.option("--vus", type=click.IntRange(min=1), help="Virtual users (closed model).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="Arrival rate in requests per second (open model).")
@click.option("--workers", type=click.IntRange(min=1), help="Load generator worker processes.")
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False),
              default="experiments", show_default=True,
              help="Where experiment names are looked up first (then $LAB_EXPERIMENTS, then beside "
                   "the results database).")
@click.option("--threshold", "thresholds", multiple=True, metavar="EXPR",
              help="Fail (exit 1) unless every run meets it, e.g. 'p95<200ms', 'error_rate<1%', "
                   "'throughput>500' (repeatable; added to the experiment's [thresholds]).")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Run each variant N times (interleaved); summaries give the median and spread.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--progress/--no-progress", default=None,
              help="Progress lines on stderr (default: only when stderr is a terminal).")
@db_option
@run_format_option
def run(experiment: str, variants: Sequence[str], duration: str | None, warmup: str | None,
        vus: int | None, rate: float | None, workers: int | None, experiments_dir: str,
        thresholds: Sequence[str], repeat: int, quiet: bool, progress: bool | None,
        db_path: str, fmt: str) -> None:
    """Run EXPERIMENT (a path, or a name in ./experiments, $LAB_EXPERIMENTS or beside the
    results database), every variant in turn.

    Prints the side-by-side table of the variants (or JSON, CSV, Markdown, JUnit) on
    stdout; progress goes to stderr when it is a terminal. Every run is stored in the
    results database. Exit codes: 0 all completed and met their thresholds, 1 a run
    failed or a threshold was missed, 2 bad input, 130 interrupted.
    """
    from lab.thresholds import parse_threshold

    cli_thresholds = []
    for text in thresholds:
        try:
            cli_thresholds.append(parse_threshold(text))
        except ValueError as exc:
            fail(f"--threshold: {exc}")
    show_progress = not quiet and (progress if progress is not None else sys.stderr.isatty())
    path = find_experiment(experiment, Path(experiments_dir), experiment_dirs(db_path))
    exp = load_experiment(path)
    try:
        plans = plan_runs(exp, list(variants) or None)
    except UnknownVariantError as exc:
        fail(f"{path}: --variant: {exc}")
    except ValueError as exc:
        fail(f"{path}: load.client: {exc}")
    plans = _apply_overrides(plans, str(path), duration, warmup, vus, rate, workers)
    from lab.plan import repeat_plans

    plans = repeat_plans(plans, repeat)
    from lab.limits import fd_budget_problem
    from lab.topology.services import find_components, missing_required

    skipped: list[dict[str, str]] = []
    if any(p.services.redis == "required" or p.services.postgres == "required" for p in plans):
        components = find_components()
        kept = []
        for plan in plans:
            why = missing_required(plan.services, components)
            if why:
                skipped.append({"variant": plan.variant, "reason": why})
            else:
                kept.append(plan)
        plans = kept

    check_plans(exp, plans)
    for plan in plans:
        problem = fd_budget_problem(plan.load)
        if problem:
            fail(f"{path}: {plan.variant}: load: {problem}")
    # Opened, written once and checked before any process starts and before anything is
    # printed: a database that cannot take the results is a one-line error, not a lost run.
    with open_writable(db_path) as store:  # opening marks runs of killed labs (Store.__init__)
        checked: set[tuple[Any, ...]] = set()
        for plan in plans:
            key = (plan.target.app, plan.target.app_dir, tuple(sorted(plan.target.env.items())))
            if plan.target.app and key not in checked:
                check_target_importable(plan.target, str(path))
                checked.add(key)
        if show_progress:
            info = exp.experiment
            click.echo(f"{info.title}" + (f" — {info.question}" if info.question else ""), err=True)
            if info.description:
                click.echo(info.description.strip(), err=True)
        for skip in skipped:
            click.echo(f"lab: skipping variant {skip['variant']}: {skip['reason']}", err=True)
        ids, statuses, problems = (asyncio.run(_run_plans(plans, store, not show_progress))
                                   if plans else ([], [], []))
        if problems:
            # The runs went on, but the database did not take all of it: say where it is.
            for problem in problems:
                click.echo(problem.describe(), err=True)
            sys.exit(ExitCode.RUN_FAILED)
        runs = store.get_runs(ids)
        stages = stages_of(store, runs)
        from lab.analysis.sweep import analyse_stored

        sweeps = analyse_stored(store, store.sweep_ids_of(ids), save=True)
        intervals = {run.id: store.intervals(run.id) for run in runs} if repeat > 1 else {}
        warnings = _nothing_served_warnings(store, runs)
    results = _check_thresholds(runs, plans, cli_thresholds)
    print_runs(exp.name, runs, fmt, skipped, exp.experiment.look_for, stages, sweeps,
                results, intervals if repeat > 1 else None)
    for line in warnings:
        click.echo(line, err=True)
    # The exit code says how the runs went, whether or not the reader of stdout stayed
    # to the end (`lab run ... | head` closes it early: that fails nothing).
    if "aborted" in statuses:
        sys.exit(ExitCode.INTERRUPTED)
    if "failed" in statuses:
        sys.exit(ExitCode.RUN_FAILED)
    if any(not r.passed for r in results):
        failed = [r for r in results if not r.passed]
        click.echo(f"lab: {len(failed)} threshold check{'s' if len(failed) != 1 else ''} failed: "
                   + "; ".join(f"run {r.run_id} ({r.variant}) {r.describe()}" for r in failed[:5]),
                   err=True)
        sys.exit(ExitCode.RUN_FAILED)


def _apply_overrides(plans: list[RunPlan], path: str, duration: str | None, warmup: str | None,
                     vus: int | None, rate: float | None, workers: int | None) -> list[RunPlan]:
    """Apply command-line load overrides to every plan; errors name the option."""
    if duration is None and warmup is None and vus is None and rate is None and workers is None:
        return plans
    out = []
    for plan in plans:
        data = plan.load.model_dump()
        if duration is not None:
            try:
                seconds = check_duration_range(parse_duration(duration), duration)
            except ValueError as exc:
                fail(f"{path}: --duration: {exc}")
            old_total = plan.load.total_duration_s
            if data["stages"]:
                # Keep the shape of the ramp; fit it into the requested length.
                for s in data["stages"]:
                    s["duration"] = s["duration"] * seconds / old_total
            data["duration"] = seconds
            if warmup is None and data["warmup"] * 2 > seconds:
                # A warm-up that would eat most of a short run shrinks with it.
                data["warmup"] = data["warmup"] * seconds / old_total
        if warmup is not None:
            try:
                data["warmup"] = check_duration_range(parse_duration(warmup), warmup, allow_zero=True)
            except ValueError as exc:
                fail(f"{path}: --warmup: {exc}")
        if vus is not None:
            data.update(vus=vus, stages=[])
        if rate is not None:
            data.update(rate=rate, stages=[])
        if workers is not None:
            data["workers"] = workers
        try:
            load = LoadSpec.model_validate(data)
        except ValidationError as exc:
            # describe_error finds the field a model-level check blames (e.g. 'vus' given to
            # the open model), as load_experiment does for the file itself.
            loc, msg = describe_error(exc.errors()[0], LoadSpec)
            where = f"load.{dotted_path(loc)}" if loc else "load"
            fail(f"{path}: {plan.variant}: {where}: {msg} (after command-line overrides)")
        # Workers asked for anew are capped anew (RunPlan.__post_init__); otherwise the
        # plan keeps what its own workers were capped from.
        fresh = {"generator_workers_asked": None} if workers is not None else {}
        out.append(dataclasses.replace(plan, load=load, **fresh))
    return out


async def _run_plans(plans: list[RunPlan], store: Any,
                     quiet: bool) -> tuple[list[int], list[str], list[Any]]:
    """Run the plans in turn into ``store``: the stored ids and statuses of the runs, and
    the ``RecordingProblem`` of each run the database did not take in full, or lost when
    its file was deleted (no run starts after one)."""
    from lab.engine import RunControl, run_plan
    from lab.progress import ProgressPrinter
    from lab.store import StoreRecorder

    control = RunControl()
    loop = asyncio.get_running_loop()

    def stop(reason: str) -> None:
        if not control.stop_requested.is_set():
            click.echo("lab: stopping; the run is kept as aborted with what it measured", err=True)
        control.stop(reason)

    loop.add_signal_handler(signal.SIGINT, stop, "interrupted by user (SIGINT)")
    loop.add_signal_handler(signal.SIGTERM, stop, "terminated (SIGTERM)")
    recorder = StoreRecorder(store)
    listeners: list[Any] = [recorder]
    if not quiet:
        listeners.append(ProgressPrinter())
    ids: list[int] = []
    statuses: list[str] = []
    try:
        for plan in plans:
            outcome = await run_plan(plan, listeners, control)
            if recorder.problems:
                break
            ids.append(recorder.run_id_for(outcome.run_key))
            statuses.append(outcome.status)
            if quiet and outcome.status == "failed":
                # --quiet silences progress, not the reason a run failed.
                click.echo(f"lab: {plan.variant}: failed: {outcome.reason}", err=True)
            if outcome.status == "aborted":
                break
        # A database deleted after the last run's end took the finished runs with it.
        recorder.keep_if_gone()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return ids, statuses, list(recorder.problems)


def _check_thresholds(runs: Sequence[Any], plans: Sequence[RunPlan],
                      extra: Sequence[Any]) -> list[Any]:
    """Each run against its variant's thresholds (from the file) plus ``extra``."""
    from lab.analysis.thresholds import evaluate
    from lab.thresholds import parse_threshold

    by_variant = {plan.variant: plan.thresholds for plan in plans}
    results = []
    for run in runs:
        own = [parse_threshold(t) for t in by_variant.get(run.variant, ())]
        names = {t.expression for t in own}
        checks = own + [t for t in extra if t.expression not in names]
        results += evaluate(checks, [run])
    return results


def _nothing_served_warnings(store: Any, runs: Sequence[Any]) -> list[str]:
    """A stderr line for each completed run in which no request succeeded (a target that
    answers nothing): exit code 0 and a table of dashes would hide it. Failed and aborted
    runs say why already."""
    from lab.analysis.summary import nothing_served

    lines = []
    for run in runs:
        what = nothing_served(run.summary) if run.summary is not None else None
        if run.status != "completed" or what is None:
            continue
        errors = sorted(store.errors(run.id), key=lambda e: -e.count)
        sample = f"; e.g. {errors[0].message}" if errors and errors[0].message else ""
        lines.append(f"lab: warning: run {run.id} ({run.variant}) completed, but {what}{sample}")
    return lines
