"""Scalability Lab: build, measure and improve the scalability of web services.

The engine is importable without Textual::

    import asyncio
    from lab import load_experiment, plan_runs, run_plan, Store, Recorder

    exp = load_experiment("experiments/caching.toml")
    with Store("results.db") as store:
        recorder = Recorder(store)
        for plan in plan_runs(exp):
            outcome = asyncio.run(run_plan(plan, [recorder]))
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scalability-lab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Experiment",
    "Latency",
    "Recorder",
    "RunControl",
    "RunOutcome",
    "RunPlan",
    "RunRecord",
    "SpecError",
    "Store",
    "StoreError",
    "StoreRecorder",
    "Summary",
    "__version__",
    "load_experiment",
    "plan_runs",
    "run_plan",
]

# Imported on first use, so `lab --help` and the generator workers start quickly.
_LAZY = {
    "Latency": "lab.analysis.summary",
    "Summary": "lab.analysis.summary",
    "RunControl": "lab.engine",
    "RunOutcome": "lab.engine",
    "run_plan": "lab.engine",
    "RunPlan": "lab.plan",
    "plan_runs": "lab.plan",
    "Experiment": "lab.spec",
    "SpecError": "lab.spec",
    "load_experiment": "lab.spec",
    "Recorder": "lab.store",
    "StoreRecorder": "lab.store",
    "RunRecord": "lab.store",
    "Store": "lab.store",
    "StoreError": "lab.errors",
}

_ALIASES = {"Recorder": "StoreRecorder"}
"""Public names kept for scripts written against an older name → the name today."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
