"""The public API of the package is pinned."""

from __future__ import annotations

import lab


def test_public_api_is_pinned() -> None:
    assert sorted(lab.__all__) == sorted([
        "Experiment", "Latency", "Recorder", "RunControl", "RunOutcome", "RunPlan", "RunRecord",
        "SpecError", "Store", "StoreError", "StoreRecorder", "Summary", "__version__", "load_experiment",
        "plan_runs",
        "run_plan",
    ])
    for name in lab.__all__:
        assert getattr(lab, name) is not None
