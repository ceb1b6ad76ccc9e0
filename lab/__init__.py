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

from lab.analysis.summary import Latency, Summary  # noqa: E402
from lab.engine import RunControl, RunOutcome, run_plan  # noqa: E402
from lab.plan import RunPlan, plan_runs  # noqa: E402
from lab.spec import Experiment, SpecError, load_experiment  # noqa: E402
from lab.store import Recorder, RunRecord, Store  # noqa: E402

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
    "Summary",
    "__version__",
    "load_experiment",
    "plan_runs",
    "run_plan",
]
