"""Experiment → RunPlans: one plan per variant, or per variant and level for a sweep."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lab.errors import UnknownVariantError
from lab.load.engines import choose_client
from lab.spec import (
    AutoscaleSpec,
    BalancerSpec,
    Experiment,
    FaultSpec,
    LoadSpec,
    ResolvedVariant,
    ServicesSpec,
    TargetSpec,
    initial_replicas,
    located_error,
    module_problem,
    sweep_variant,
)


@dataclass(frozen=True)
class SweepPoint:
    """Where a run sits in a sweep: one level of one variant's sweep."""

    key: str
    """Shared by every level of one variant's sweep (a uuid4 hex)."""
    parameter: str
    """What the sweep varies, as written in ``[sweep] parameter``."""
    level: float
    index: int
    """0-based position of the level."""
    levels: tuple[float, ...]
    """Every level of the sweep, in run order."""
    slo_p99_ms: float
    """Open-model rate sweeps: the p99 (ms) a level must stay under to meet the SLO."""


@dataclass(frozen=True)
class RunPlan:
    """Everything the engine needs to execute one run."""

    experiment: str
    """Experiment name: the TOML file's stem, e.g. ``caching``."""
    title: str
    variant: str
    target: TargetSpec
    load: LoadSpec
    source: Path | None = None
    """The experiment file the plan came from."""
    services: ServicesSpec = field(default_factory=ServicesSpec)
    """Backing services the lab starts for the run (redis, PostgreSQL, downstream apps)."""
    look_for: str = ""
    """The experiment's "what to look for" text."""
    sweep: SweepPoint | None = None
    """Set for the runs of a sweep."""
    thresholds: tuple[str, ...] = ()
    """Threshold expressions (``p95<200ms``) this run is checked against."""
    repeat: int = 0
    """0-based repetition of this variant (``lab run --repeat N``)."""
    repeat_group: str = ""
    """Shared by the repetitions of one variant in one ``lab run --repeat N``."""
    slo_p99_ms: float | None = None
    """The experiment's latency objective (``[experiment] slo_p99_ms``), or None."""
    balancer: BalancerSpec | None = None
    """nginx in front of the target's replicas (``[balancer]``), or None."""
    autoscale: AutoscaleSpec | None = None
    """The HPA-style autoscaler (``[autoscale]``), or None: a fixed replica count."""
    faults: tuple[FaultSpec, ...] = ()
    """Failures the lab causes during the run (``[[faults]]``)."""
    generator_workers_asked: int | None = None
    """Set when fewer generator workers run than ``load.workers`` asked for (or its
    default gave): the number asked. Set by the plan itself (see ``__post_init__``);
    reset it to None with a new ``load`` whose workers were asked for anew."""

    def __post_init__(self) -> None:
        # A total the user sets (connections, max_in_flight, VUs) is never exceeded nor
        # left unsent: each worker needs at least one of each, so no more workers run than
        # the smallest of them.
        cap = generator_worker_cap(self.load)
        if cap is not None and (self.load.workers or 1) > cap[0]:
            object.__setattr__(self, "generator_workers_asked", self.load.workers)
            object.__setattr__(self, "load", self.load.model_copy(update={"workers": cap[0]}))

    @property
    def replicas(self) -> int:
        """Replicas at the start of the run (1 for a target without ``replicas``)."""
        return initial_replicas(self.target, self.autoscale)

    @property
    def run_name(self) -> str:
        """How a person tells this run from the others of one ``lab run``: the variant, and
        for a run of a sweep its level (``lru``, ``default vus=8``). A dotted parameter
        shows its last part (``env.USL_SERIAL_MS=2``), as ``lab runs`` shows it."""
        if self.sweep is None:
            return self.variant
        return f"{self.variant} {self.sweep.parameter.rsplit('.', 1)[-1]}={self.sweep.level:g}"

    @property
    def generator_workers_note(self) -> str:
        """Why fewer generator workers run than were asked for, e.g. ``connections = 1 is a
        total, not split over 2 workers``; empty when they all run."""
        cap = generator_worker_cap(self.load)
        asked = self.generator_workers_asked
        if asked is None or cap is None or cap[0] >= asked:
            return ""
        return f"{cap[1]} is a total, not split over {asked} workers"

    def config(self) -> dict[str, Any]:
        """The resolved configuration, JSON-serialisable, as stored with the run."""
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "source": str(self.source) if self.source else None,
            "target": self.target.model_dump(mode="json"),
            "load": self.load.model_dump(mode="json"),
            "services": self.services.model_dump(mode="json"),
            **({"balancer": self.balancer.model_dump(mode="json")} if self.balancer else {}),
            **({"autoscale": self.autoscale.model_dump(mode="json"),
                "autoscale_note": hpa_differences(self.autoscale)} if self.autoscale else {}),
            **({"faults": [f.model_dump(mode="json") for f in self.faults]} if self.faults else {}),
            **({"replicas": self.replicas} if self.balancer else {}),
            **({"slo_p99_ms": self.slo_p99_ms} if self.slo_p99_ms is not None else {}),
            **({"thresholds": list(self.thresholds)} if self.thresholds else {}),
            **({"repeat": self.repeat, "repeat_group": self.repeat_group}
               if self.repeat_group else {}),
            **({"sweep": {"parameter": self.sweep.parameter, "level": self.sweep.level,
                          "index": self.sweep.index, "levels": list(self.sweep.levels)}}
               if self.sweep else {}),
            # Every request of an HTTP/2 load goes out as HTTP/2 or fails: httpx is told
            # not to fall back to HTTP/1.1.
            "http_version": "HTTP/2" if self.load.http2 else "HTTP/1.1",
            **({"generator_workers_asked": self.generator_workers_asked,
                "generator_workers_note": self.generator_workers_note}
               if self.generator_workers_note else {}),
        }


HPA_DEFAULTS = {"sync_period": 15.0, "tolerance": 0.1, "scale_down_window": 300.0,
                "scale_up_window": 0.0, "policy_period": 15.0}
"""The Kubernetes HPA's defaults (kubernetes.io, Horizontal Pod Autoscaling: the
controller's flags and the default ``behavior``)."""


def hpa_differences(spec: AutoscaleSpec) -> str:
    """Which time constants of ``spec`` differ from the HPA's defaults, in one line (the
    run's config says so): ``sync_period 1s (HPA: 15s), scale_down_window 30s (HPA: 300s)``."""
    periods = {p.period for p in (*spec.scale_up_policies, *spec.scale_down_policies)}
    ours = {"sync_period": spec.sync_period, "tolerance": spec.tolerance,
            "scale_down_window": spec.scale_down_window, "scale_up_window": spec.scale_up_window}
    parts = [f"{name} {value:g}{'' if name == 'tolerance' else 's'} (HPA: {HPA_DEFAULTS[name]:g}"
             f"{'' if name == 'tolerance' else 's'})"
             for name, value in ours.items() if value != HPA_DEFAULTS[name]]
    parts += [f"policy period {p:g}s (HPA: 15s)" for p in sorted(periods)
              if p != HPA_DEFAULTS["policy_period"]]
    return ", ".join(parts) or "the HPA's defaults"


def generator_worker_cap(load: LoadSpec) -> tuple[int, str] | None:
    """The most generator workers ``load`` can be split over without losing or exceeding a
    total it sets, and that total as written (``connections = 1``); None when any number
    will do.

    Open model: every worker holds at least one connection and one request in flight, so
    ``connections`` and ``max_in_flight`` over more workers than their value would be
    exceeded. Closed model: a worker with no VU sends nothing, so its share of ``max_rps``
    would never be sent; no more workers run than the most VUs of the run (over its
    stages). A ``rate`` is split exactly (a worker may get a fraction of a request per
    second), so it sets no cap.
    """
    if load.model == "closed":
        peak = max(1, math.ceil(load.peak_level))
        if not load.stages or peak == load.vus:
            return peak, f"vus = {peak}"
        return peak, f"the stages' peak of {peak} VUs"
    caps = [(load.max_in_flight, f"max_in_flight = {load.max_in_flight}")]
    if load.connections is not None:
        caps.append((load.connections, f"connections = {load.connections}"))
    return min(caps)


def default_generator_workers(target: TargetSpec, cores: int | None = None) -> int:
    """Generator processes when the experiment does not say: one per core left after
    the target's processes (none for an external target), at least 1, at most 8.

    Sharing cores with the target distorts the measurement (every microsecond the
    generator spends is taken from the target), so the generator takes only what is left.
    """
    cores = cores or os.cpu_count() or 1
    target_procs = target.workers if target.app else 0
    if target.app and target.cpus is not None:
        target_procs = min(target_procs, target.cpus)
    return max(1, min(8, cores - target_procs))


def resolve_load(load: LoadSpec, target: TargetSpec) -> LoadSpec:
    """The load with its machine- and target-dependent defaults filled in: generator
    workers, and the client engine ``auto`` stands for.

    Raises:
        ValueError: ``client = "fast"`` for a target it cannot serve.
    """
    update: dict[str, object] = {}
    if load.workers is None:
        update["workers"] = default_generator_workers(target)
    # A target the lab starts always listens on http://127.0.0.1.
    url = target.url or "http://127.0.0.1/"
    update["client"] = choose_client(load.client, url, load.http2 or load.follow_redirects)
    return load.model_copy(update=update)


def plan_runs(experiment: Experiment, variants: list[str] | None = None) -> list[RunPlan]:
    """One RunPlan per variant of the experiment, in file order.

    Args:
        experiment: a validated experiment.
        variants: names to keep (in the experiment's order); None keeps all.

    Raises:
        UnknownVariantError: a requested variant name does not exist (message lists the
            known ones; a KeyError too).
        ValueError: a variant asks for an engine that cannot serve its target.
    """
    resolved = experiment.resolved_variants()
    if variants:
        known = [v.name for v in resolved]
        missing = [name for name in variants if name not in known]
        if missing:
            raise UnknownVariantError(f"unknown variant {missing[0]!r}; "
                                      f"the experiment has: {', '.join(known)}")
        resolved = [v for v in resolved if v.name in variants]
    def plan(v: ResolvedVariant, sweep: SweepPoint | None = None) -> RunPlan:
        return RunPlan(
            experiment=experiment.name,
            title=experiment.experiment.title,
            variant=v.name,
            target=v.target,
            load=resolve_load(v.load, v.target),
            source=experiment.source,
            services=v.services,
            look_for=experiment.experiment.look_for,
            slo_p99_ms=experiment.experiment.slo_p99_ms,
            sweep=sweep,
            thresholds=tuple(f"{metric}{cond}" for metric, cond in v.thresholds.items()),
            balancer=v.balancer,
            autoscale=v.autoscale,
            faults=v.faults,
        )

    if experiment.sweep is None:
        return [plan(v) for v in resolved]
    spec = experiment.sweep
    levels = tuple(spec.values())
    plans = []
    for v in resolved:
        key = uuid.uuid4().hex
        for i, level in enumerate(levels):
            point = SweepPoint(key, spec.parameter, level, i, levels, spec.slo_p99_ms)
            plans.append(plan(sweep_variant(v, spec, level), point))
    return plans


def repeat_plans(plans: list[RunPlan], times: int) -> list[RunPlan]:
    """Each plan ``times`` times, interleaved (A B A B …, so slow drift of the machine
    spreads over every variant instead of biasing the last one); the repetitions of one
    plan share a ``repeat_group``."""
    if times <= 1:
        return plans
    groups = [uuid.uuid4().hex for _ in plans]
    return [replace(plan, repeat=i, repeat_group=groups[j])
            for i in range(times) for j, plan in enumerate(plans)]


def usable_cores() -> int:
    """CPU cores the lab may run on: its affinity mask, which a container, cgroup cpuset
    or ``taskset`` can make smaller than the machine (targets are pinned inside it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _variant_loc(experiment: Experiment, plan: RunPlan, part: str, key: str) -> tuple[str | int, ...]:
    """Where the value of ``part.key`` that ``plan`` uses is written: in its variant
    when the variant sets it, else in the experiment's own table."""
    for i, variant in enumerate(experiment.variants):
        if variant.name == plan.variant and key in getattr(variant, part):
            return ("variants", i, part, key)
    return (part, key)


def check_plans(experiment: Experiment, plans: Sequence[RunPlan]) -> None:
    """What would only fail once a run has started, found before any starts.

    - ``target.cpus`` above the cores this machine lets the lab use (`usable_cores`);
    - a ``[target] app`` or ``[[services.apps]] app`` whose module cannot be found from
      the directory and ``PYTHONPATH`` its process will have (`lab.spec.module_problem`:
      nothing is imported, so no target code runs here).

    Only ``plans`` are checked, so a variant left out with ``--variant`` may ask for more
    than this machine has.

    Raises:
        SpecError: ``file:line: field: message`` for the first problem, the field as
            written (``variants[1].target.cpus``, ``sweep.levels``, ``services.apps[0].app``).
    """
    path = str(experiment.source or experiment.name)
    cores = usable_cores()
    checked: set[tuple[Any, ...]] = set()
    for plan in plans:
        cpus = plan.target.cpus
        if plan.target.app and cpus is not None and cpus > cores:
            have = f"this machine has {cores} usable"
            if plan.sweep is not None and plan.sweep.parameter == "target.cpus":
                raise located_error(path, ("sweep", "levels"),
                                    f"level {plan.sweep.level:g} asks for target.cpus = {cpus} "
                                    f"cores, {have}")
            raise located_error(path, _variant_loc(experiment, plan, "target", "cpus"),
                                f"{cpus} cores asked, {have}")
        app_dir = plan.target.app_dir
        if plan.target.app and app_dir and not Path(app_dir).is_dir():
            raise located_error(path, _variant_loc(experiment, plan, "target", "app_dir"),
                                f"no such directory: {app_dir!r}")
        apps: list[tuple[tuple[str | int, ...], str, dict[str, str]]] = []
        if plan.target.app:
            apps.append((_variant_loc(experiment, plan, "target", "app"), plan.target.app,
                         plan.target.env))
        services = _variant_loc(experiment, plan, "services", "apps")
        apps += [((*services, i, "app"), app.app, app.env) for i, app in enumerate(plan.services.apps)]
        for loc, app, env in apps:
            key = (app, plan.target.app_dir, env.get("PYTHONPATH"))
            if key in checked:
                continue
            problem = module_problem(app, plan.target.app_dir, env)
            if problem:
                raise located_error(path, loc, f"cannot import {app.partition(':')[0]!r} ({problem})")
            checked.add(key)
