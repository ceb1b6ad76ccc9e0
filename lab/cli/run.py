"""``lab run EXPERIMENT``: run every variant of an experiment in turn, store the runs and
print them side by side.

A thin front end over ``lab.session``, as the TUI is: ``prepare`` plans and checks the
runs, ``check_targets`` imports the target once the database is open, a ``RunSequence``
runs the plans with a progress printer on stderr, and ``conclude`` stores the sweep fits and
returns the report this command prints and takes its exit code from.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lab.cli.common import db_option, lab_command, open_writable, run_format_option
from lab.cli.output import print_runs
from lab.errors import ExitCode
from lab.plan import RunPlan
from lab.session import (
    LoadOverrides,
    PreparedRuns,
    RunSequence,
    check_targets,
    conclude,
    parse_thresholds,
    prepare,
)
from lab.spec import experiment_dirs, find_experiment, load_experiment

if TYPE_CHECKING:
    from lab.engine import RunOutcome
    from lab.store import Store


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
@click.option("--cluster", metavar="ADDRESS",
              help="Run the generator workers on a Dask cluster: tcp://HOST:8786, or local:N to "
                   "start N local Dask workers for each run (default: $LAB_CLUSTER, then [load] "
                   "cluster).")
@click.option("--target-host", metavar="ADDRESS",
              help="Started targets (and their balancer) listen on this address of this machine "
                   "instead of 127.0.0.1, so a cluster's other machines can reach them.")
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
        vus: int | None, rate: float | None, workers: int | None, cluster: str | None,
        target_host: str | None, experiments_dir: str,
        thresholds: Sequence[str], repeat: int, quiet: bool, progress: bool | None,
        db_path: str, fmt: str) -> None:
    """Run EXPERIMENT (a path, or a name in ./experiments, $LAB_EXPERIMENTS or beside the
    results database), every variant in turn.

    Prints the side-by-side table of the variants (or JSON, CSV, Markdown, JUnit) on
    stdout; progress goes to stderr when it is a terminal. Every run is stored in the
    results database. Exit codes: 0 all completed and met their thresholds, 1 a run
    failed or a threshold was missed, 2 bad input, 130 interrupted.
    """
    extra = parse_thresholds(thresholds)
    show_progress = not quiet and (progress if progress is not None else sys.stderr.isatty())
    path = find_experiment(experiment, Path(experiments_dir), experiment_dirs(db_path))
    exp = load_experiment(path)
    prepared = prepare(exp, source=str(path), variants=variants, thresholds=extra, repeat=repeat,
                       overrides=LoadOverrides(duration, warmup, vus, rate, workers, cluster, target_host))
    # Opened, written once and checked before any process starts and before anything is
    # printed: a database that cannot take the results is a one-line error, not a lost run.
    with open_writable(db_path) as store:  # opening marks runs of killed labs (Store.__init__)
        check_targets(prepared)
        if show_progress:
            info = exp.experiment
            click.echo(f"{info.title}" + (f" — {info.question}" if info.question else ""), err=True)
            if info.description:
                click.echo(info.description.strip(), err=True)
        for skip in prepared.skipped:
            click.echo(f"lab: skipping variant {skip.variant}: {skip.reason}", err=True)
        runs = asyncio.run(_run(prepared, store, not show_progress)) if prepared.plans else None
        if runs is not None and runs.problems:
            # The runs went on, but the database did not take all of it: say where it is.
            for problem in runs.problems:
                click.echo(problem.describe(), err=True)
            sys.exit(ExitCode.RUN_FAILED)
        report = conclude(store, prepared, runs.run_ids if runs else [],
                          stopped=runs is not None and runs.halted)
    print_runs(report, fmt)
    for line in report.warnings:
        click.echo(line, err=True)
    # The exit code says how the runs went, whether or not the reader of stdout stayed
    # to the end (`lab run ... | head` closes it early: that fails nothing).
    code = report.exit_code
    if code == ExitCode.RUN_FAILED and "failed" not in report.statuses:
        click.echo(f"lab: {report.thresholds_line()}", err=True)
    if code != ExitCode.OK:
        sys.exit(code)


async def _run(prepared: PreparedRuns, store: Store, quiet: bool) -> RunSequence:
    """Run the prepared runs in turn into ``store``, with progress on stderr unless
    ``quiet``; Ctrl-C or SIGTERM stops the current run (kept as aborted) and starts no
    other."""
    from lab.progress import ProgressPrinter

    runs = RunSequence(prepared, store, [] if quiet else [ProgressPrinter()])
    loop = asyncio.get_running_loop()

    def stop(reason: str) -> None:
        if not runs.halted:
            click.echo("lab: stopping; the run is kept as aborted with what it measured", err=True)
        runs.stop(reason)

    def said_why(plan: RunPlan, outcome: RunOutcome) -> None:
        if quiet and outcome.status == "failed" and not runs.problems:
            # --quiet silences progress, not the reason a run failed.
            click.echo(f"lab: {plan.variant}: failed: {outcome.reason}", err=True)

    loop.add_signal_handler(signal.SIGINT, stop, "interrupted by user (SIGINT)")
    loop.add_signal_handler(signal.SIGTERM, stop, "terminated (SIGTERM)")
    try:
        await runs.run(on_end=said_why)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return runs
