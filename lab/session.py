"""Prepare and conclude runs: the one path ``lab run`` and the TUI both take.

A front end turns what the user asked for into ``PreparedRuns`` with ``prepare``
(thresholds parsed, runs planned with their overrides and repeats, variants whose services
are missing set aside, the experiment's code and the machine checked), checks that the
target imports with ``check_targets`` once the results database is open, runs the plans in
a ``RunSequence`` (the store's recorder plus its own listeners), and hands the stored run
ids to ``conclude``, which stores each sweep's analysis and fits and returns one frozen
``RunReport``: what every renderer (the table, JSON, CSV, Markdown, JUnit) and the TUI
show, and the exit code it adds up to.

Nothing here prints, imports Textual or knows which front end called it; errors are
``LabError``s (bad input: exit code 2) whose message is the one line to show.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lab.errors import ExitCode, InputError, UnknownVariantError
from lab.plan import RunPlan, check_plans, plan_runs, repeat_plans
from lab.spec import Experiment, LoadSpec, check_duration_range, describe_error, dotted_path, parse_duration
from lab.thresholds import Threshold, parse_threshold

if TYPE_CHECKING:
    from lab.analysis.noise import Change
    from lab.analysis.replicas import FleetFigures
    from lab.analysis.slo import SloFigures
    from lab.analysis.stages import StageFigures
    from lab.analysis.sweep import SweepAnalysis
    from lab.analysis.thresholds import ThresholdResult
    from lab.engine import RunControl, RunOutcome
    from lab.events import Listener
    from lab.store import (
        AutoscaleEventRow,
        FaultRow,
        IntervalRow,
        RecordingProblem,
        ReplicaCountRow,
        RunRecord,
        Store,
    )
    from lab.topology.services import Component


RunPlanFn = Callable[[RunPlan, Sequence["Listener"], "RunControl"], Awaitable["RunOutcome"]]
"""``lab.engine.run_plan``'s shape; tests pass a fake that emits synthetic events."""


@dataclass(frozen=True)
class LoadOverrides:
    """Load settings given on the command line, applied to every planned run (None: as
    the experiment says)."""

    duration: str | None = None
    """Run length as written, e.g. ``20s``; a staged load keeps its shape, scaled to it."""
    warmup: str | None = None
    """Warm-up as written, e.g. ``3s``."""
    vus: int | None = None
    """Virtual users (closed model); replaces any stages."""
    rate: float | None = None
    """Arrival rate, requests per second (open model); replaces any stages."""
    workers: int | None = None
    """Load generator worker processes."""
    cluster: str | None = None
    """Run the generators on a Dask cluster (``local:N`` or ``tcp://HOST:PORT``)."""
    target_host: str | None = None
    """The address a started target listens on instead of 127.0.0.1 (``--target-host``)."""

    @property
    def any(self) -> bool:
        """Whether anything is overridden."""
        return any(v is not None for v in dataclasses.astuple(self))


@dataclass(frozen=True)
class SkippedVariant:
    """A variant left out before any run started, and why (e.g. a required service is not
    installed, with the command that installs it)."""

    variant: str
    """The variant's name."""
    reason: str
    """One line: what is missing and how to get it."""

    def as_dict(self) -> dict[str, str]:
        """The ``skipped`` entry of ``lab run --format json``."""
        return {"variant": self.variant, "reason": self.reason}


@dataclass(frozen=True)
class PreparedRuns:
    """An experiment's runs, planned and checked, ready for the engine."""

    experiment: Experiment
    """The validated experiment."""
    source: str
    """The experiment file, as error messages name it."""
    plans: tuple[RunPlan, ...]
    """The runs, in the order they go (repeats interleaved), skipped variants left out."""
    skipped: tuple[SkippedVariant, ...] = ()
    """Variants left out because a service they require is missing."""
    thresholds: tuple[Threshold, ...] = ()
    """Thresholds every run must meet on top of its variant's own ``[thresholds]``."""
    repeat: int = 1
    """Runs per variant (``--repeat``): above 1, the report gives each figure's spread."""


def parse_thresholds(texts: Sequence[str]) -> tuple[Threshold, ...]:
    """Parse command-line thresholds (``p95<200ms``, ``error_rate<1%``).

    Raises:
        InputError: ``--threshold: <what is wrong>`` for the first bad one.
    """
    out = []
    for text in texts:
        try:
            out.append(parse_threshold(text))
        except ValueError as exc:
            raise InputError(f"--threshold: {exc}") from None
    return tuple(out)


def prepare(experiment: Experiment, *, source: str | None = None,
            variants: Sequence[str] | None = None, overrides: LoadOverrides | None = None,
            thresholds: Sequence[Threshold] = (), repeat: int = 1,
            components: Mapping[str, Component] | None = None) -> PreparedRuns:
    """Plan an experiment's runs and check everything that can be checked before a
    process starts and without the results database.

    In order: the runs are planned (``variants`` only, when given; every sweep level),
    ``overrides`` applied, each run repeated ``repeat`` times (interleaved), variants
    whose required service (redis, postgres) is not installed set aside with the reason,
    then the plans checked: cores, app directories and app modules (``check_plans``),
    the open-file budget of the load, and each ``hash`` balancer's key with ``nginx -t``
    (nothing started). The target's import itself is ``check_targets``.

    Args:
        experiment: the loaded experiment.
        source: the experiment file as messages name it (default: where it was loaded from).
        variants: variant names to run, or None for all.
        overrides: command-line load settings.
        thresholds: thresholds every run must meet on top of its variant's own.
        repeat: runs per variant, at least 1.
        components: the installed backing programs (default: looked up when a variant
            requires one; ``lab.topology.services.find_components``).

    Raises:
        InputError: an unknown variant (``FILE: --variant: ...``), a client engine that
            cannot serve the load, an override the load model refuses, or a load beyond
            the open-file limit; one line naming the file and the field or option.
        SpecError: a plan this machine cannot run (``check_plans``), or a hash key nginx
            refuses.
    """
    from lab.limits import fd_budget_problem
    from lab.topology.services import find_components, missing_required

    path = source if source is not None else str(experiment.source or experiment.name)
    try:
        plans = plan_runs(experiment, list(variants) if variants else None)
    except UnknownVariantError as exc:
        raise InputError(f"{path}: --variant: {exc}") from None
    except ValueError as exc:
        raise InputError(f"{path}: load.client: {exc}") from None
    overrides = _with_cluster(overrides or LoadOverrides(), path)
    if overrides.any:
        plans = [_overridden(plan, path, overrides) for plan in plans]
    plans = repeat_plans(plans, repeat)
    skipped: list[SkippedVariant] = []
    if any(p.services.redis == "required" or p.services.postgres == "required"
           or p.balancer is not None for p in plans):
        found = dict(components) if components is not None else find_components()
        kept = []
        for plan in plans:
            why = missing_required(plan.services, found, balancer=plan.balancer is not None)
            if why:
                skipped.append(SkippedVariant(plan.variant, why))
            else:
                kept.append(plan)
        plans = kept
    check_plans(experiment, plans)
    for plan in plans:
        problem = fd_budget_problem(plan.load)
        if problem:
            raise InputError(f"{path}: {plan.variant}: load: {problem}")
    prepared = PreparedRuns(experiment, path, tuple(plans), tuple(skipped), tuple(thresholds), repeat)
    _check_hash_keys(prepared)
    return prepared


CLUSTER_ENV = "LAB_CLUSTER"
"""Where ``--cluster``'s default comes from (it beats ``[load] cluster``)."""


def _with_cluster(overrides: LoadOverrides, path: str) -> LoadOverrides:
    """``overrides`` with the cluster ``LAB_CLUSTER`` names when ``--cluster`` does not,
    the address checked.

    Raises:
        InputError: an address that is neither ``local:N`` nor ``tcp://HOST:PORT``, or
            ``--workers`` with a cluster (its Dask workers are the generator workers).
    """
    from lab.cluster.address import parse_cluster

    option, cluster = "--cluster", overrides.cluster
    if cluster is None and os.environ.get(CLUSTER_ENV, "").strip():
        option, cluster = CLUSTER_ENV, os.environ[CLUSTER_ENV]
    if cluster is None:
        return overrides
    try:
        cluster = parse_cluster(cluster).text
    except ValueError as exc:
        raise InputError(f"{path}: {option}: {exc}") from None
    if overrides.workers is not None:
        raise InputError(f"{path}: --workers: with {option} the generator workers are the "
                         f"cluster's Dask workers; start as many as you need")
    return dataclasses.replace(overrides, cluster=cluster)


def check_clusters(prepared: PreparedRuns) -> None:
    """Connect to each remote Dask cluster the runs name and check it can run them: it
    answers, has workers, each with this lab's version, and every worker can reach the
    target (a loopback-only target needs workers on this machine). ``local:N`` needs
    only Dask installed. Blocking (up to 5 s per address); nothing is left connected.

    Raises:
        ClusterError: one line naming the address and what is wrong.
    """
    from lab.cluster.address import parse_cluster
    from lab.cluster.checks import ClusterError, cannot_reach, check_workers, connect, is_loopback_url
    from lab.topology.targets import url_host

    checked: set[tuple[str, bool]] = set()
    for plan in prepared.plans:
        if not plan.load.cluster:
            continue
        address = parse_cluster(plan.load.cluster)
        url = plan.target.url or f"http://{url_host(plan.target.host)}"
        loopback = is_loopback_url(url)
        if (address.text, loopback) in checked:
            continue
        checked.add((address.text, loopback))
        if address.is_local:
            try:
                import distributed  # noqa: F401
            except ImportError:
                raise ClusterError(f"--cluster {address.text}: Dask distributed is not installed "
                                   f"(pip install distributed)") from None
            continue
        client = connect(address.text)
        try:
            facts = check_workers(client, address.text)
        finally:
            client.close()
        far = cannot_reach(facts, url)
        if far is not None:
            where = plan.target.url or f"the lab-started target (on {plan.target.host})"
            raise ClusterError(f"--cluster {address.text}: {plan.variant}: {where} is reachable "
                               f"from this machine only; worker {far.address} on {far.host} "
                               f"cannot send it requests (a url target other machines reach, or "
                               f"--target-host with an address of this machine they reach)")


def check_targets(prepared: PreparedRuns) -> None:
    """Check that each distinct target app imports, each in a subprocess (its import side
    effects stay out of the lab; up to 30 s each, successes cached for the process).

    Front ends call it once the results database is open and before any run starts (a
    blocking call: the TUI runs it in a thread). It first checks the Dask clusters the
    runs name (``check_clusters``).

    Raises:
        SpecError: ``FILE:LINE: target.app: cannot import ...`` for the first that fails.
        ClusterError: see ``check_clusters``.
    """
    from lab.spec import check_target_importable

    check_clusters(prepared)
    checked: set[tuple[Any, ...]] = set()
    for plan in prepared.plans:
        key = (plan.target.app, plan.target.app_dir, tuple(sorted(plan.target.env.items())))
        if plan.target.app and key not in checked:
            check_target_importable(plan.target, prepared.source)
            checked.add(key)


def _check_hash_keys(prepared: PreparedRuns) -> None:
    """Ask nginx (``nginx -t``, nothing started) whether it takes each ``hash`` balancer's
    key: only nginx knows its variables.

    Raises:
        SpecError: ``FILE:LINE: balancer.hash_key: nginx does not take it: unknown
            "x" variable`` (or ``variants[i].balancer.hash_key``).
    """
    from lab.spec.wording import located_error
    from lab.topology.balancer import nginx_refuses_key
    from lab.topology.services import find_components

    keys = {plan.balancer.hash_key: plan.variant for plan in prepared.plans
            if plan.balancer is not None and plan.balancer.method == "hash" and plan.balancer.hash_key}
    nginx = find_components()["nginx"] if keys else None
    if nginx is None or not nginx.usable or nginx.path is None:
        return  # without nginx these variants are skipped, with the install hint
    experiment = prepared.experiment
    for hash_key, variant in keys.items():
        problem = nginx_refuses_key(nginx.path, hash_key)
        if problem is None:
            continue
        loc: tuple[str | int, ...] = ("balancer", "hash_key")
        for i, v in enumerate(experiment.variants):
            if v.name == variant and isinstance(v.balancer, dict) and "hash_key" in v.balancer:
                loc = ("variants", i, "balancer", "hash_key")
        raise located_error(prepared.source, loc,
                            f"nginx does not take {hash_key!r}: {problem} (an nginx variable such "
                            "as \"$http_x_user\" or \"$cookie_session\")")


def _overridden(plan: RunPlan, path: str, overrides: LoadOverrides) -> RunPlan:
    """``plan`` with the command-line load settings; errors name the option."""
    data = plan.load.model_dump()
    if overrides.duration is not None:
        try:
            seconds = check_duration_range(parse_duration(overrides.duration), overrides.duration)
        except ValueError as exc:
            raise InputError(f"{path}: --duration: {exc}") from None
        old_total = plan.load.total_duration_s
        if data["stages"]:
            # Keep the shape of the ramp; fit it into the requested length.
            for s in data["stages"]:
                s["duration"] = s["duration"] * seconds / old_total
        data["duration"] = seconds
        if overrides.warmup is None and data["warmup"] * 2 > seconds:
            # A warm-up that would eat most of a short run shrinks with it.
            data["warmup"] = data["warmup"] * seconds / old_total
    if overrides.warmup is not None:
        try:
            data["warmup"] = check_duration_range(parse_duration(overrides.warmup), overrides.warmup,
                                                  allow_zero=True)
        except ValueError as exc:
            raise InputError(f"{path}: --warmup: {exc}") from None
    if overrides.vus is not None:
        data.update(vus=overrides.vus, stages=[])
    if overrides.rate is not None:
        data.update(rate=overrides.rate, stages=[])
    if overrides.workers is not None:
        data["workers"] = overrides.workers
    if overrides.cluster is not None:
        data["cluster"] = overrides.cluster
    if overrides.target_host is not None and plan.target.app:
        try:
            target = type(plan.target).model_validate({**plan.target.model_dump(),
                                                       "host": overrides.target_host})
        except ValidationError as exc:
            msg = str(exc.errors()[0]['msg']).removeprefix('Value error, ')
            raise InputError(f"{path}: --target-host: {msg}") from None
        plan = dataclasses.replace(plan, target=target)
    try:
        load = LoadSpec.model_validate(data)
    except ValidationError as exc:
        # describe_error finds the field a model-level check blames (e.g. 'vus' given to
        # the open model), as load_experiment does for the file itself.
        loc, msg = describe_error(exc.errors()[0], LoadSpec)
        where = f"load.{dotted_path(loc)}" if loc else "load"
        raise InputError(f"{path}: {plan.variant}: {where}: {msg} (after command-line overrides)") from None
    # Workers asked for anew are capped anew (RunPlan.__post_init__); otherwise the plan
    # keeps what its own workers were capped from.
    fresh = {"generator_workers_asked": None} if overrides.workers is not None else {}
    faults = plan.faults
    if overrides.duration is not None and faults:
        # A fault keeps its place in the run, as the stages keep their shape.
        scale = load.total_duration_s / plan.load.total_duration_s
        faults = tuple(f.model_copy(update={"at": round(f.at * scale, 3)}) for f in faults)
    return dataclasses.replace(plan, load=load, faults=faults, **fresh)


class RunSequence:
    """Prepared runs, one after the other, each recorded into the results database.

    The front end adds its own listeners (a progress printer, the TUI's live model) and
    steers the sequence: ``stop`` ends the current run and starts no other (Ctrl-C, the
    TUI's ``s`` and ``q``), ``skip`` ends only the current one (the TUI's ``n``), and
    ``control`` changes the current run's load. A run the database did not take in full
    (``problems``) ends the sequence: no run starts into a database that stopped taking
    writes.

    Args:
        prepared: the runs (``prepare``).
        store: the results database, open for writing.
        listeners: more subscribers to the engine's events, after the store's recorder.
        run_plan_fn: the engine's ``run_plan`` (tests pass a fake event source).
    """

    def __init__(self, prepared: PreparedRuns, store: Store, listeners: Sequence[Listener] = (),
                 run_plan_fn: RunPlanFn | None = None) -> None:
        from lab.engine import RunControl, run_plan
        from lab.store import StoreRecorder

        self.prepared = prepared
        self.recorder = StoreRecorder(store)
        """Writes every event of every run to the store."""
        self.listeners: list[Listener] = [self.recorder, *listeners]
        self.run_plan_fn: RunPlanFn = run_plan_fn or run_plan
        self.control = RunControl()
        """Steers the current run (a fresh one for each run)."""
        self.run_ids: list[int] = []
        """Stored ids of the finished runs, in the order they ran."""
        self.outcomes: list[tuple[RunPlan, RunOutcome]] = []
        """Each finished run's plan and outcome."""
        self.index = 0
        """The position of the current (or last) run in ``prepared.plans``."""
        self.halted = False
        """``stop`` was called: no other run starts."""

    @property
    def problems(self) -> list[RecordingProblem]:
        """Runs the database did not take in full, with the line that says where their data is."""
        return self.recorder.problems

    @property
    def current_run_id(self) -> int | None:
        """The stored id of the run being recorded (or the last one recorded)."""
        return self.recorder.last_run_id

    def stop(self, reason: str) -> None:
        """End the current run (stored as aborted, data kept) and start no other."""
        self.halted = True
        self.control.stop(reason)

    def skip(self, reason: str) -> None:
        """End the current run (stored as aborted, data kept); the next one starts."""
        self.control.stop(reason)

    async def run(self, on_start: Callable[[int, RunPlan], None] | None = None,
                  on_end: Callable[[RunPlan, RunOutcome], None] | None = None) -> None:
        """Run the plans in turn until the last has ended, ``stop`` was called, or the
        database stopped taking writes; ``on_start(index, plan)`` before each run starts,
        ``on_end(plan, outcome)`` after it has ended and been stored. A database file
        deleted or replaced meanwhile has each finished run kept in a file of its own
        (``problems``)."""
        from lab.engine import RunControl

        for index, plan in enumerate(self.prepared.plans):
            if self.halted:
                break
            self.index = index
            self.control = RunControl()
            if on_start is not None:
                on_start(index, plan)
            outcome = await self.run_plan_fn(plan, self.listeners, self.control)
            try:
                self.run_ids.append(self.recorder.run_id_for(outcome.run_key))
            except KeyError:
                pass  # RunStarted never reached the store: nothing of it is stored
            self.outcomes.append((plan, outcome))
            if on_end is not None:
                on_end(plan, outcome)
            if self.recorder.problems:
                break
        # A database deleted after the last run's end took the finished runs with it.
        self.recorder.keep_if_gone()


@dataclass(frozen=True)
class RunReport:
    """Runs and everything worked out from them: what the renderers and the TUI show.

    ``conclude`` makes it after ``lab run`` or a TUI run; ``lab compare`` makes one of
    stored runs (with ``changes`` and ``note``).
    """

    experiment: str
    """The experiment's name (``a vs b`` for runs of several)."""
    runs: tuple[RunRecord, ...]
    """The stored runs, in the order they ran (or were asked for)."""
    skipped: tuple[SkippedVariant, ...] = ()
    """Variants left out before any run started."""
    look_for: str = ""
    """The experiment's "what to look for" text, shown under the table."""
    stages: Mapping[int, list[StageFigures]] = field(default_factory=dict)
    """Run id → per-stage figures, for runs whose load has more than one stage."""
    sweeps: tuple[tuple[int, str, SweepAnalysis], ...] = ()
    """``(sweep id, variant, analysis with its USL/Amdahl fits)`` of each sweep the runs
    are levels of (stored by ``conclude``)."""
    thresholds: tuple[ThresholdResult, ...] = ()
    """Each threshold checked against each run, in run order."""
    repeat_intervals: Mapping[int, list[IntervalRow]] | None = None
    """Run id → intervals when variants were repeated (the spread of each figure is
    worked out from them); None when not."""
    changes: tuple[tuple[Sequence[RunRecord], list[Change]], ...] = ()
    """``(runs of a group, figure changes against the baseline)`` (``lab compare --baseline``)."""
    note: str = ""
    """A line above the table (runs of different experiments)."""
    warnings: tuple[str, ...] = ()
    """Lines for stderr: completed runs in which no request succeeded."""
    stopped: bool = False
    """The user stopped the runs (Ctrl-C, SIGTERM, the TUI's ``s`` or ``q``)."""
    fleets: Mapping[int, FleetReport] = field(default_factory=dict)
    """Run id → its replicas' figures and autoscaler decisions, for runs behind a balancer."""
    slo: Mapping[int, SloFigures] = field(default_factory=dict)
    """Run id → its seconds above the experiment's latency objective, when it has one."""

    @property
    def statuses(self) -> tuple[str, ...]:
        """Each run's status (``completed``, ``failed``, ``aborted``), in run order."""
        return tuple(run.status for run in self.runs)

    @property
    def failed_thresholds(self) -> tuple[ThresholdResult, ...]:
        """The threshold checks a run did not meet."""
        return tuple(r for r in self.thresholds if not r.passed)

    @property
    def exit_code(self) -> ExitCode:
        """How ``lab run`` ends: 130 the runs were stopped (a run was interrupted), 1 a run
        failed or a threshold was missed, else 0."""
        if self.stopped or "aborted" in self.statuses:
            return ExitCode.INTERRUPTED
        if "failed" in self.statuses or self.failed_thresholds:
            return ExitCode.RUN_FAILED
        return ExitCode.OK

    def thresholds_line(self) -> str:
        """One line on the threshold checks: the missed ones named (the first five), else
        ``all 6 threshold checks passed``, or ``no thresholds checked`` when there were none.
        Whether any was missed is ``failed_thresholds``."""
        failed = self.failed_thresholds
        if not self.thresholds:
            return "no thresholds checked"
        if not failed:
            n = len(self.thresholds)
            return "the 1 threshold check passed" if n == 1 else f"all {n} threshold checks passed"
        return (f"{len(failed)} threshold check{'s' if len(failed) != 1 else ''} failed: "
                + "; ".join(f"run {r.run_id} ({r.variant}) {r.describe()}" for r in failed[:5]))


def conclude(store: Store, prepared: PreparedRuns, run_ids: Sequence[int],
             stopped: bool = False) -> RunReport:
    """Work out and store what the finished runs add up to.

    Reads the runs back, works out per-stage figures, analyses every sweep they are
    levels of and stores its report and USL/Amdahl fits (``sweeps.report``, ``fits``),
    checks each run against its variant's thresholds and ``prepared.thresholds``, and
    words a warning for each completed run in which no request succeeded.

    Args:
        store: the results database the runs were recorded into (writable).
        prepared: what was run.
        run_ids: the stored runs, in the order they ran.
        stopped: the user stopped the runs (``RunSequence.halted``).

    Raises:
        StoreError: the database cannot be read or written.
    """
    from lab.analysis.sweep import analyse_stored

    runs = store.get_runs(list(run_ids))
    stages = stages_of(store, runs)
    fleets = fleets_of(store, runs)
    sweeps = analyse_stored(store, store.sweep_ids_of(list(run_ids)), save=True)
    intervals = {run.id: store.intervals(run.id) for run in runs} if prepared.repeat > 1 else None
    return RunReport(
        experiment=prepared.experiment.name,
        runs=tuple(runs),
        skipped=prepared.skipped,
        look_for=prepared.experiment.experiment.look_for,
        stages=stages,
        sweeps=tuple(sweeps),
        thresholds=tuple(_check_thresholds(runs, prepared)),
        repeat_intervals=intervals,
        warnings=tuple(_nothing_served_warnings(store, runs)),
        stopped=stopped,
        fleets=fleets,
        slo=slo_of(store, runs),
    )


def stored_report(store: Store, run_ids: Sequence[int]) -> RunReport:
    """A report of stored runs, worked out as ``conclude`` works out a session's (stage
    figures, the sweeps the runs are levels of with their fits) without writing anything:
    what ``lab compare`` and ``lab report`` render.

    Raises:
        UnknownRunError: ``no run with id N`` for the first unknown id.
        StoreError: the database cannot be read.
    """
    from lab.analysis.sweep import analyse_stored

    runs = store.get_runs(list(run_ids))
    names = sorted({r.experiment for r in runs})
    sweeps = analyse_stored(store, store.sweep_ids_of([run.id for run in runs]), save=False)
    return RunReport(experiment=" vs ".join(names), runs=tuple(runs), stages=stages_of(store, runs),
                     sweeps=tuple(sweeps), fleets=fleets_of(store, runs), slo=slo_of(store, runs))


def slo_of(store: Store, runs: Sequence[RunRecord]) -> dict[int, SloFigures]:
    """Each run's seconds above its experiment's ``slo_p99_ms`` (runs without one: none)."""
    from lab.analysis.slo import slo_figures

    out = {}
    for run in runs:
        slo = run.settings.slo_p99_ms
        if slo is not None:
            out[run.id] = slo_figures(store.intervals(run.id), slo, run.settings.load.warmup_s)
    return out


@dataclass(frozen=True)
class FleetReport:
    """A run's replicas: their figures over the measured window, and every autoscaler
    decision with the per-interval replica counts."""

    figures: FleetFigures
    decisions: tuple[AutoscaleEventRow, ...]
    counts: tuple[ReplicaCountRow, ...]
    session_lost: int = 0
    """Answers 401 over the whole run: with a target that answers 401 to a session it does
    not know (``targets.replicas``), each is a user sent back to log in again."""
    faults: tuple[FaultRow, ...] = ()
    """The run's ``[[faults]]`` as they came due."""


def fleets_of(store: Store, runs: Sequence[RunRecord]) -> dict[int, FleetReport]:
    """The replicas' figures of the runs that had replicas behind a balancer."""
    from lab.analysis.replicas import fleet_figures

    out = {}
    for run in runs:
        replicas = store.replicas(run.id)
        if not replicas:
            continue
        warmup = run.settings.load.warmup_s
        counts = store.replica_counts(run.id)
        if run.summary is not None:
            start, end = warmup, warmup + run.summary.window_s
        else:
            start, end = 0.0, max([c.t_s for c in counts] or [0.0])
        readings = [r for r in store.resources(run.id) if r.role in ("replica", "balancer")]
        figures = fleet_figures(replicas, store.replica_intervals(run.id), readings,
                                [c.ready for c in counts if start - 1e-9 <= c.t_s <= end + 1e-9],
                                start, end)
        lost = sum(e.count for e in store.errors(run.id) if e.status == 401)
        out[run.id] = FleetReport(figures, tuple(store.autoscale_events(run.id)), tuple(counts), lost,
                                  tuple(store.faults(run.id)))
    return out


def stages_of(store: Store, runs: Sequence[RunRecord]) -> dict[int, list[StageFigures]]:
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


def _check_thresholds(runs: Sequence[RunRecord], prepared: PreparedRuns) -> list[ThresholdResult]:
    """Each run against its variant's thresholds (from the file) plus the extra ones."""
    from lab.analysis.thresholds import evaluate

    by_variant = {plan.variant: plan.thresholds for plan in prepared.plans}
    results = []
    for run in runs:
        own = [parse_threshold(t) for t in by_variant.get(run.variant, ())]
        names = {t.expression for t in own}
        checks = own + [t for t in prepared.thresholds if t.expression not in names]
        results += evaluate(checks, [run])
    return results


def _nothing_served_warnings(store: Store, runs: Sequence[RunRecord]) -> list[str]:
    """A line for each completed run in which no request succeeded (a target that answers
    nothing): exit code 0 and a table of dashes would hide it. Failed and aborted runs say
    why already."""
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
