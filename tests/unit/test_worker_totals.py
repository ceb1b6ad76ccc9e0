"""Totals the user sets are totals: split over generator workers, none is ever exceeded.

An open-model ``connections`` or ``max_in_flight`` below the worker count would give each
worker at least one, and a closed-model worker without a VU would never send its share of
``max_rps``, so the lab runs fewer workers and says so in the run's config
(tests/e2e/test_worker_totals.py runs them).
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.plan import plan_runs
from lab.spec import Experiment


def _experiment(load: dict[str, Any], url: str = "http://127.0.0.1:9") -> Experiment:
    exp = Experiment.model_validate({
        "experiment": {"title": "totals"},
        "target": {"url": url, "stats_path": ""},
        "load": {"timeout": "2s", "requests": [{"path": "/work"}], **load},
    })
    exp.name = "totals"
    return exp


@pytest.mark.parametrize(("load", "workers", "note"), [
    ({"model": "open", "rate": 10, "connections": 1}, 1, "connections = 1"),
    ({"model": "open", "rate": 10, "max_in_flight": 3}, 3, "max_in_flight = 3"),
    ({"model": "open", "rate": 10, "max_in_flight": 5, "connections": 2}, 2, "connections = 2"),
    ({"model": "open", "rate": 10, "connections": 4}, 4, None),
    # A rate is split exactly (a worker may get a fraction of a request per second).
    ({"model": "open", "rate": 0.5}, 4, None),
    # A worker without a VU would never send its share of max_rps.
    ({"vus": 1, "max_rps": 0.5}, 1, "vus = 1"),
    ({"vus": 2}, 2, "vus = 2"),
    ({"vus": 5, "max_rps": 10}, 4, None),
    ({"stages": [{"duration": "1s", "target": 1}, {"duration": "1s", "target": 2.5}]}, 3,
     "the stages' peak of 3 VUs"),
])
def test_workers_are_capped_by_the_totals_they_would_exceed(load: dict[str, Any], workers: int,
                                                           note: str | None) -> None:
    plan = plan_runs(_experiment({**load, "workers": 4}))[0]
    assert plan.load.workers == workers
    if note is None:
        assert plan.generator_workers_note == "" and "generator_workers_note" not in plan.config()
    else:
        assert plan.generator_workers_note == f"{note} is a total, not split over 4 workers"
        assert plan.config()["generator_workers_asked"] == 4
