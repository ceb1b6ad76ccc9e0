"""The command line: ``lab run``, ``lab runs``, ``lab show``, ``lab compare``.

Data goes to stdout, diagnostics and progress to stderr. Every input error is one line on
stderr and exit code 2 (``lab.errors``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError
from rich.console import Console

from lab import __version__
from lab.errors import ExitCode, LabError
from lab.export_command import export
from lab.fit_command import fit
from lab.ids import RUN_ID, SWEEP_ID
from lab.plan import RunPlan, check_plans, plan_runs
from lab.report_command import report
from lab.spec import (
    LoadSpec,
    SpecError,
    check_duration_range,
    check_target_importable,
    describe_error,
    dotted_path,
    experiment_dirs,
    find_experiment,
    load_experiment,
    parse_duration,
)

FORMATS = click.Choice(["table", "json"])
RUN_FORMATS = click.Choice(["table", "json", "csv", "markdown", "junit"])


class InputError(Exception):
    """Bad input found by the CLI itself; its message is the one line to print."""


def _fail(message: str) -> NoReturn:
    raise InputError(message)


def _db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", "db_path", type=click.Path(dir_okay=False), envvar="LAB_DB",
        default="results.db", show_default=True, show_envvar=True,
        help="The results database (SQLite).",
    )(f)


def _run_format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=RUN_FORMATS, default="table", show_default=True,
                        help="Output format on stdout (markdown: for a pull-request comment; "
                             "junit: one test case per threshold).")(f)


def _format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
                        help="Output format on stdout.")(f)


class _StdoutClosed(SystemExit):
    """stdout's reader went away; exits 0 unless a command catches it to go on to its own
    exit code (``lab run`` does: the runs decide it)."""


def _stdout_to_devnull() -> None:
    """Send what is still to be written to stdout nowhere (its reader is gone), so neither
    the next write nor the flush at exit fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class _LabGroup(click.Group):
    """The ``lab`` group: a sub-command's stdout closed by its reader (``lab runs | head``)
    ends it with exit 0. click itself turns that error into exit 1, which the exit codes
    document as "a run failed"."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _stdout_to_devnull()
            raise _StdoutClosed(ExitCode.OK) from None


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        # `lab show 1 | head` closed the pipe: that is the reader's choice, not a failed
        # run (rich's default exits 1, which exit code 1 documents as "a run failed").
        _stdout_to_devnull()
        raise _StdoutClosed(ExitCode.OK)


def _stdout_console() -> Console:
    # Piped output gets a wide, colourless table rather than rich's 80-column default.
    return _StdoutConsole(file=sys.stdout, width=None if sys.stdout.isatty() else 160)


def _open_store(db_path: str) -> Any:
    """Open (or create) the results database for writing, and check that it is sound:
    a file that cannot be written, or is damaged, fails here, before any process starts
    (a ``StoreError``: one line, exit 2)."""
    from lab.store import open_store

    return open_store(db_path, check=True)


def _open_existing_store(db_path: str) -> Any:
    """Open the results database for reading; nothing is created or changed."""
    from lab.store import open_store

    return open_store(db_path, readonly=True)


@click.group(cls=_LabGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lab")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="The results database for the TUI, or for any sub-command (default: "
                   "$LAB_DB or results.db).")
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False), default=None,
              help="Where the TUI lists experiments from (default: experiments).")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, experiments_dir: str | None) -> None:
    """Scalability Lab: run experiments against local web services and compare the runs.

    Without a sub-command, opens the terminal UI (same as `lab tui`).
    """
    if db_path is not None:
        # Sub-commands read --db from LAB_DB when not given their own.
        os.environ["LAB_DB"] = db_path
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui, db_path=db_path or os.environ.get("LAB_DB", "results.db"),
                   experiments_dir=experiments_dir or "experiments")


@cli.command()
@_db_option
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False),
              default="experiments", show_default=True, help="Where experiments are listed from.")
@click.option("--view-only", is_flag=True,
              help="Look only: keys that start, stop, change or delete runs do nothing (and say so); "
                   "the results database is only read.")
def tui(db_path: str, experiments_dir: str, view_only: bool) -> None:
    """Open the terminal UI: pick an experiment, watch it live, browse and compare runs."""
    from lab.tui.app import run_tui

    run_tui(db_path=Path(db_path), experiments_dir=Path(experiments_dir), view_only=view_only)


@cli.command()
@_db_option
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False),
              default="experiments", show_default=True, help="Where experiments are listed from.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on; anything but loopback shares the lab on a network "
                   "(view-only unless --control).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="TCP port to serve on.")
@click.option("--view-only", is_flag=True,
              help="Serve a view for an audience: keys that start, stop, change or delete runs do "
                   "nothing (the default when --host is not loopback).")
@click.option("--control", is_flag=True,
              help="Give full control to whoever has the URL, on any --host (the default on loopback).")
def web(db_path: str, experiments_dir: str, host: str, port: int, view_only: bool,
        control: bool) -> None:
    """Serve the terminal UI in a browser (textual-serve), for workshops and projectors.

    Every page needs the secret token in the printed URL; without it, 403.
    """
    from lab.tui.web import serve

    if view_only and control:
        _fail("lab web: --view-only and --control exclude each other")
    serve(db_path=Path(db_path), experiments_dir=Path(experiments_dir), host=host, port=port,
          control=True if control else (False if view_only else None))


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
                _fail(f"{path}: --duration: {exc}")
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
                _fail(f"{path}: --warmup: {exc}")
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
            _fail(f"{path}: {plan.variant}: {where}: {msg} (after command-line overrides)")
        # Workers asked for anew are capped anew (RunPlan.__post_init__); otherwise the
        # plan keeps what its own workers were capped from.
        fresh = {"generator_workers_asked": None} if workers is not None else {}
        out.append(dataclasses.replace(plan, load=load, **fresh))
    return out


@cli.command()
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
@_db_option
@_run_format_option
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
            _fail(f"--threshold: {exc}")
    show_progress = not quiet and (progress if progress is not None else sys.stderr.isatty())
    path = find_experiment(experiment, Path(experiments_dir), experiment_dirs(db_path))
    exp = load_experiment(path)
    try:
        plans = plan_runs(exp, list(variants) or None)
    except KeyError as exc:
        _fail(f"{path}: --variant: {exc.args[0]}")
    except ValueError as exc:
        _fail(f"{path}: load.client: {exc}")
    plans = _apply_overrides(plans, str(path), duration, warmup, vus, rate, workers)
    from lab.plan import repeat_plans

    plans = repeat_plans(plans, repeat)
    from lab.limits import fd_budget_problem
    from lab.services import find_components, missing_required

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
            _fail(f"{path}: {plan.variant}: load: {problem}")
    # Opened, written once and checked before any process starts and before anything is
    # printed: a database that cannot take the results is a one-line error, not a lost run.
    with _open_store(db_path) as store:  # opening marks runs of killed labs (Store.__init__)
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
        stages = _stages_of(store, runs)
        from lab.analysis.sweep import analyse_stored

        sweeps = analyse_stored(store, store.sweep_ids_of(ids), save=True)
        intervals = {run.id: store.intervals(run.id) for run in runs} if repeat > 1 else {}
        warnings = _nothing_served_warnings(store, runs)
    results = _check_thresholds(runs, plans, cli_thresholds)
    _print_runs(exp.name, runs, fmt, skipped, exp.experiment.look_for, stages, sweeps,
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


async def _run_plans(plans: list[RunPlan], store: Any,
                     quiet: bool) -> tuple[list[int], list[str], list[Any]]:
    """Run the plans in turn into ``store``: the stored ids and statuses of the runs, and
    the ``RecordingProblem`` of a run the database did not take in full (no run starts
    after one)."""
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
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return ids, statuses, list(recorder.problems)


def _check_thresholds(runs: Sequence[Any], plans: Sequence[RunPlan],
                      extra: Sequence[Any]) -> list[Any]:
    """Each run against its variant's thresholds (from the file) plus ``extra``."""
    from lab.thresholds import evaluate, parse_threshold

    by_variant = {plan.variant: plan.thresholds for plan in plans}
    results = []
    for run in runs:
        own = [parse_threshold(t) for t in by_variant.get(run.variant, ())]
        names = {t.expression for t in own}
        checks = own + [t for t in extra if t.expression not in names]
        results += evaluate(checks, [run])
    return results


def _repeat_json(group: Sequence[Any], intervals: dict[int, list[Any]]) -> dict[str, Any]:
    from lab.analysis.noise import FIGURES, spread

    out: dict[str, Any] = {"variant": group[0].variant, "run_ids": [r.id for r in group],
                           "runs": len(group)}
    for fig in FIGURES:
        sp = spread(fig, group, intervals)
        out[fig.name] = None if sp is None else {"median": sp.median, "low": sp.low, "high": sp.high}
    return out


def _stages_of(store: Any, runs: Sequence[Any]) -> dict[int, list[Any]]:
    """Per-stage figures of the runs whose load has more than one stage."""
    from lab.analysis.stages import stage_figures

    out = {}
    for run in runs:
        load = run.config.get("load") or {}
        if len(load.get("stages") or []) > 1:
            user_levels = [(e.t_s, e.level) for e in store.run_events(run.id) if e.reason == "user"]
            out[run.id] = stage_figures(store.intervals(run.id), load, store.target_samples(run.id),
                                        user_levels)
    return out


def _print_sweeps(sweeps: Sequence[tuple[int, str, Any]]) -> None:
    from lab.report.sweep_report import fits_table, levels_table, sweep_plot, verdicts

    console = _stdout_console()
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


def _repeat_groups(runs: Sequence[Any]) -> list[list[Any]]:
    """Runs grouped by repetition group (a run without one is its own group), in order."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        key = run.config.get("repeat_group") or f"run-{run.id}"
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def _print_runs(experiment: str, runs: Sequence[Any], fmt: str,
                skipped: Sequence[dict[str, str]] = (), look_for: str = "",
                stages: dict[int, list[Any]] | None = None,
                sweeps: Sequence[tuple[int, str, Any]] = (),
                results: Sequence[Any] = (),
                repeat_intervals: dict[int, list[Any]] | None = None,
                changes: Sequence[tuple[Any, list[Any]]] = (), note: str = "") -> None:
    """Print runs in ``fmt`` on stdout (see ``_write_runs``); ``note``: a line above the
    table (table format only).

    A reader that closes stdout early (``lab run ... | head -40``) ends the output, not
    the command: the rest is dropped and the caller goes on to the exit code its runs and
    thresholds give. (click turns a BrokenPipeError it sees into exit 1, "a run failed".)
    """
    try:
        _write_runs(experiment, runs, fmt, skipped, look_for, stages, sweeps, results,
                    repeat_intervals, changes, note)
    except (BrokenPipeError, _StdoutClosed):
        _stdout_to_devnull()


def _write_runs(experiment: str, runs: Sequence[Any], fmt: str,
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
            doc["repeats"] = [_repeat_json(group, repeat_intervals) for group in _repeat_groups(runs)]
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
    console = _stdout_console()
    if note:
        console.print(note, highlight=False, markup=False)
    if sweeps:
        _print_sweeps(sweeps)
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

        console.print(repeats_table(_repeat_groups(runs), repeat_intervals))
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


@cli.command("runs")
@click.option("--experiment", help="Only runs of this experiment.")
@click.option("--limit", type=click.IntRange(1, 2**63 - 1), help="At most this many, newest first.")
@_db_option
@_format_option
def runs_cmd(experiment: str | None, limit: int | None, db_path: str, fmt: str) -> None:
    """List stored runs, newest first."""
    from lab.report.json_report import runs_json
    from lab.report.table import runs_table

    with _open_existing_store(db_path) as store:
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
        _stdout_console().print(runs_table(runs))


@cli.command()
@click.argument("run_id", type=RUN_ID)
@_db_option
@_format_option
def show(run_id: int, db_path: str, fmt: str) -> None:
    """Show one run: its facts, summary, errors, stages and per-second series."""
    from lab.report.json_report import series_json, stages_json
    from lab.report.table import run_details, series_table, stages_table

    with _open_existing_store(db_path) as store:
        try:
            run_rec = store.get_run(run_id)
        except KeyError as exc:
            _fail(f"{db_path}: {exc.args[0]}")
        intervals = store.intervals(run_id)
        errors = store.errors(run_id)
        samples = store.target_samples(run_id)
        stages = _stages_of(store, [run_rec]).get(run_id)
    if fmt == "json":
        doc = series_json(run_rec, intervals, samples)
        if stages:
            doc["stages"] = stages_json(stages)
        click.echo(json.dumps(doc, indent=2))
        return
    console = _stdout_console()
    console.print(run_details(run_rec, errors))
    if stages:
        console.print(stages_table(run_rec, stages))
    console.print(series_table(run_rec, intervals, samples))


@cli.command()
@click.argument("run_ids", type=RUN_ID, nargs=-1)
@click.option("--baseline", "baseline_id", type=RUN_ID, metavar="RUN_ID",
              help="Compare against this run (and its --repeat siblings): a change is flagged "
                   "only when it lies outside the measured spread.")
@click.option("--threshold", "thresholds", multiple=True, metavar="EXPR",
              help="Check every run against it, e.g. 'p95<200ms' (repeatable).")
@click.option("--fail-on-regression", is_flag=True,
              help="With --baseline: exit 1 when a figure got worse beyond the noise.")
@_db_option
@_run_format_option
def compare(run_ids: Sequence[int], baseline_id: int | None, thresholds: Sequence[str],
            fail_on_regression: bool, db_path: str, fmt: str) -> None:
    """Put stored runs side by side, with deltas against the first one (or --baseline).

    With --baseline, each other run (or group of --repeat runs) is also checked figure by
    figure against the baseline's measured spread: better, worse, or within noise.
    """
    from lab.thresholds import evaluate, parse_threshold

    checks = []
    for text in thresholds:
        try:
            checks.append(parse_threshold(text))
        except ValueError as exc:
            _fail(f"--threshold: {exc}")
    if not run_ids and baseline_id is None:
        _fail("lab compare: give RUN_IDs to compare (and/or --baseline RUN_ID)")
    with _open_existing_store(db_path) as store:
        try:
            ids = list(run_ids)
            if baseline_id is not None:
                base = store.get_run(baseline_id)
                group = base.config.get("repeat_group")
                siblings = [r.id for r in store.list_runs(base.experiment)
                            if group and r.config.get("repeat_group") == group]
                base_ids = sorted(set(siblings) | {baseline_id})
                ids = base_ids + [i for i in ids if i not in base_ids]
            runs = store.get_runs(ids)
        except KeyError as exc:
            _fail(f"{db_path}: {exc.args[0]}")
        stages = _stages_of(store, runs)
        changes: list[tuple[Any, list[Any]]] = []
        if baseline_id is not None:
            from lab.analysis.noise import compare as noise_compare

            intervals = {run.id: store.intervals(run.id) for run in runs}
            groups = _repeat_groups(runs)
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
    _print_runs(" vs ".join(names), runs, fmt, stages=stages, results=results, changes=changes,
                note=note)
    if any(not r.passed for r in results):
        sys.exit(ExitCode.RUN_FAILED)
    if fail_on_regression and any(c.verdict == "worse" for _g, found in changes for c in found):
        click.echo("lab: a figure got worse beyond the measured noise", err=True)
        sys.exit(ExitCode.RUN_FAILED)


@cli.command()
@_db_option
@_format_option
def doctor(db_path: str, fmt: str) -> None:
    """Check what this machine has for the experiments (redis-server, PostgreSQL, nginx),
    what on it changes results (cores, load, open-file limit, memory), and the results
    database (path, size, schema, runs; read only, never created)."""
    from rich.table import Table

    from lab.doctor import checks

    found = checks(db_path)
    if fmt == "json":
        click.echo(json.dumps({"checks": [c.as_dict() for c in found]}, indent=2))
        return
    styles = {"ok": "green", "warn": "yellow", "missing": "red", "info": "dim"}
    table = Table(title="lab doctor", show_edge=False, title_style="bold")
    for column in ("check", "", "value", "note"):
        table.add_column(column, overflow="fold")
    for c in found:
        table.add_row(c.name, f"[{styles[c.status]}]{c.status}[/]", c.value, c.advice)
    _stdout_console().print(table)


@cli.command()
@click.argument("sweep_ids", type=SWEEP_ID, nargs=-1)
@_db_option
@_format_option
def sweep(sweep_ids: Sequence[int], db_path: str, fmt: str) -> None:
    """Show stored sweeps (overlaid when several), or list them without SWEEP_IDS."""
    with _open_existing_store(db_path) as store:
        if not sweep_ids:
            records = store.list_sweeps()
            if fmt == "json":
                click.echo(json.dumps({"sweeps": [
                    {"id": r.id, "experiment": r.experiment, "variant": r.variant,
                     "parameter": r.parameter, "levels": r.levels, "created_at": r.created_at,
                     "runs": [run.id for run in r.runs], "fits": r.fits,
                     "capacity_rps": r.capacity_rps, "missing_levels": r.missing_levels}
                    for r in records]}, indent=2))
                return
            if not records:
                click.echo(f"no sweeps in {db_path} (an experiment with a [sweep] makes them: "
                           f"lab run usl-demo)")
                return
            from rich.table import Table

            from lab.analysis.sweep import MIN_FIT_LEVELS

            table = Table(title="sweeps", show_edge=False, title_style="bold")
            for column in ("id", "experiment", "variant", "parameter", "levels", "runs", "N*"):
                table.add_column(column)
            for r in records:
                usl = next((f for f in r.fits if f["model"] == "usl"), None)
                n_star = f"{usl['n_star']:.3g}" if usl and usl["n_star"] else "–"
                if usl and (usl["points"] or 0) > len(r.runs):
                    # Fitted over more levels than are stored: a level was deleted by a lab
                    # that did not yet drop the fit with it (see Store.delete_run).
                    n_star = f"{n_star} (stale: {usl['points']} levels)"
                runs = str(len(r.runs))
                if r.missing_levels:
                    # A deleted (or never run) level: the fit, if any, is of the levels left.
                    runs = (f"{len(r.runs)} of {len(r.levels)}, missing "
                            + ", ".join(f"{v:g}" for v in r.missing_levels))
                table.add_row(str(r.id), r.experiment, r.variant, r.parameter,
                              ", ".join(f"{v:g}" for v in r.levels), runs, n_star)
            if any(r.missing_levels for r in records):
                table.caption = (f"missing: levels without a stored run (deleted, or not run); N* is "
                                 f"fitted from the levels left, – with fewer than {MIN_FIT_LEVELS}")
                table.caption_justify = "left"
            _stdout_console().print(table)
            return
        try:
            from lab.analysis.sweep import analyse_stored

            sweeps = analyse_stored(store, list(sweep_ids))
        except KeyError as exc:
            _fail(f"{db_path}: {exc.args[0]}")
    if fmt == "json":
        click.echo(json.dumps({"sweeps": [{"id": i, "variant": v, **a.as_dict()}
                                          for i, v, a in sweeps]}, indent=2))
        return
    _print_sweeps(sweeps)


cli.add_command(fit)
cli.add_command(export)
cli.add_command(report)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: subprocess.run ends its child first


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``lab`` console script."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="lab",
                 standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("lab: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "lab"
        click.echo(f"{cmd}: {exc.format_message()} (see '{cmd} --help')", err=True)
        sys.exit(ExitCode.BAD_INPUT)
    except (SpecError, InputError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(ExitCode.BAD_INPUT)
    except LabError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("lab: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head); nothing more to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(ExitCode.OK)
