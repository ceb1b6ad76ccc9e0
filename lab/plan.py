"""Experiment → RunPlans: one plan per variant (sweeps and repeats come later)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.spec import Experiment, LoadSpec, TargetSpec


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

    def config(self) -> dict[str, Any]:
        """The resolved configuration, JSON-serialisable, as stored with the run."""
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "source": str(self.source) if self.source else None,
            "target": self.target.model_dump(mode="json"),
            "load": self.load.model_dump(mode="json"),
        }


def plan_runs(experiment: Experiment, variants: list[str] | None = None) -> list[RunPlan]:
    """One RunPlan per variant of the experiment, in file order.

    Args:
        experiment: a validated experiment.
        variants: names to keep (in the experiment's order); None keeps all.

    Raises:
        KeyError: a requested variant name does not exist (message lists the known ones).
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
            load=v.load,
            source=experiment.source,
        )
        for v in resolved
    ]
