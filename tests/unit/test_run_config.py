"""A run's stored configuration read as typed fields (``lab.run_config``): what every
experiment's plans store reads back field for field, and a config an older lab wrote
(keys missing, other types) reads as defaults rather than failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.plan import plan_runs, repeat_plans
from lab.run_config import LoadSettings, RunConfig
from lab.spec import load_experiment
from tests.conftest import REPO

EXPERIMENTS = sorted((REPO / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiments_stored_config_reads_back_as_typed_fields(path: Path) -> None:
    plans = repeat_plans(plan_runs(load_experiment(path)), 2)
    for plan in plans:
        stored = json.loads(json.dumps(plan.config()))  # as results.db holds it
        config = RunConfig.from_dict(stored)
        load = plan.load
        assert (config.experiment, config.variant) == (plan.experiment, plan.variant)
        assert config.load.model == load.model and config.load.warmup_s == load.warmup
        assert config.load.client == load.client and config.load.workers == load.workers
        assert config.load.http2 == load.http2 and config.load.vus == load.vus
        assert config.load.stages == tuple((s.duration, s.target) for s in load.stages)
        assert config.load.table == stored["load"]
        assert config.repeat_group == (plan.repeat_group or None)
        if plan.sweep is None:
            assert config.sweep is None
        else:
            assert config.sweep is not None
            assert (config.sweep.parameter, config.sweep.level, config.sweep.index) == (
                plan.sweep.parameter, plan.sweep.level, plan.sweep.index)
        assert config.generator_workers_note == (plan.generator_workers_note or None)


def test_an_old_or_odd_config_reads_as_defaults() -> None:
    config = RunConfig.from_dict({"load": {"warmup": "2s", "workers": True, "stages": "x"},
                                  "sweep": {"levels": [1, "a", 4]}, "thresholds": ["p95<1s", 3]})
    assert config.load == LoadSettings(table={"warmup": "2s", "workers": True, "stages": "x"})
    assert config.sweep is not None and config.sweep.levels == (1.0, 4.0) and config.sweep.parameter == ""
    assert config.thresholds == ("p95<1s",)
    assert RunConfig.from_dict({}) == RunConfig()


def test_the_stored_keys_stay_the_contracts() -> None:
    # Typed reading changes nothing of what is stored: RunPlan.config() writes the keys.
    plan = plan_runs(load_experiment(REPO / "experiments" / "caching.toml"))[0]
    assert set(plan.config()) >= {"experiment", "variant", "source", "target", "load", "services",
                                  "http_version"}
