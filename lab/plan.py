"""Experiment → RunPlans: one plan per variant (sweeps and repeats come later)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.load.engines import choose_client
from lab.spec import Experiment, LoadSpec, ServicesSpec, TargetSpec


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

    def config(self) -> dict[str, Any]:
        """The resolved configuration, JSON-serialisable, as stored with the run."""
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "source": str(self.source) if self.source else None,
            "target": self.target.model_dump(mode="json"),
            "load": self.load.model_dump(mode="json"),
            "services": self.services.model_dump(mode="json"),
        }


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
    update["client"] = choose_client(load.client, url)
    return load.model_copy(update=update)


def plan_runs(experiment: Experiment, variants: list[str] | None = None) -> list[RunPlan]:
    """One RunPlan per variant of the experiment, in file order.

    Args:
        experiment: a validated experiment.
        variants: names to keep (in the experiment's order); None keeps all.

    Raises:
        KeyError: a requested variant name does not exist (message lists the known ones).
        ValueError: a variant asks for an engine that cannot serve its target.
    """
    resolved = experiment.resolved_variants()
    if variants:
        known = [v.name for v in resolved]
        missing = [name for name in variants if name not in known]
        if missing:
            raise KeyError(f"unknown variant {missing[0]!r}; the experiment has: {', '.join(known)}")
        resolved = [v for v in resolved if v.name in variants]
    return [
        RunPlan(
            experiment=experiment.name,
            title=experiment.experiment.title,
            variant=v.name,
            target=v.target,
            load=resolve_load(v.load, v.target),
            source=experiment.source,
            services=v.services,
            look_for=experiment.experiment.look_for,
        )
        for v in resolved
    ]
