"""TOML experiment file → validated experiment model, with one-line errors.

An experiment file has four parts: ``[experiment]`` (title, question, description),
``[target]`` (the system under test), ``[load]`` (load model and the request mix in
``[[load.requests]]``) and optional ``[[variants]]`` that override target or load fields.
Everything is checked when the file is loaded, every resolved variant included, so a
mistake is reported before anything is started: as ``file:line: field.path: message``.

Durations are written as ``"250ms"``, ``"20s"``, ``"2m"``, ``"1h"`` or a number of
seconds and are floats in seconds after validation; none may exceed 24 hours.

The package, by concern:

* ``durations``: parsing and range checks of durations;
* ``models``: the pydantic models of an experiment file;
* ``wording``: pydantic errors → one line naming the field, and the field's line;
* ``loader``: finding and loading experiment files;
* ``preflight``: whether a target's app imports, and where a module would be found.
"""

from lab.errors import SpecError
from lab.spec.durations import MAX_DURATION_S, check_duration_range, parse_duration
from lab.spec.loader import EXPERIMENTS_ENV, experiment_dirs, find_experiment, load_experiment
from lab.spec.models import (
    AppServiceSpec,
    Experiment,
    ExperimentInfo,
    LoadSpec,
    ParamSpec,
    RequestSpec,
    ResolvedVariant,
    ServicesSpec,
    Stage,
    SweepSpec,
    TargetSpec,
    VariantSpec,
    initial_replicas,
    sweep_variant,
)
from lab.spec.preflight import check_target_importable, module_problem
from lab.spec.scaling import (
    AUTOSCALE_METRICS,
    BALANCER_METHODS,
    MAX_REPLICAS,
    AutoscaleSpec,
    BalancerSpec,
    FaultSpec,
    PolicySpec,
)
from lab.spec.wording import describe_error, dotted_path, located_error

__all__ = [
    "AUTOSCALE_METRICS",
    "BALANCER_METHODS",
    "MAX_REPLICAS",
    "AutoscaleSpec",
    "BalancerSpec",
    "FaultSpec",
    "PolicySpec",
    "initial_replicas",
    "EXPERIMENTS_ENV",
    "MAX_DURATION_S",
    "AppServiceSpec",
    "Experiment",
    "ExperimentInfo",
    "LoadSpec",
    "ParamSpec",
    "RequestSpec",
    "ResolvedVariant",
    "ServicesSpec",
    "SpecError",
    "Stage",
    "SweepSpec",
    "TargetSpec",
    "VariantSpec",
    "check_duration_range",
    "check_target_importable",
    "describe_error",
    "dotted_path",
    "experiment_dirs",
    "find_experiment",
    "load_experiment",
    "located_error",
    "module_problem",
    "parse_duration",
    "sweep_variant",
]
