"""The saturation experiment's file: an open-model ramp from 10 % to 150 % of a known capacity."""

from __future__ import annotations

from lab.spec import load_experiment
from tests.conftest import REPO

EXPERIMENT = REPO / "experiments" / "saturation.toml"


def test_the_ramp_goes_from_10_to_150_percent_of_capacity() -> None:
    exp = load_experiment(EXPERIMENT)
    (variant,) = exp.resolved_variants()
    env = variant.target.env
    capacity = int(env["SLOTS"]) * 1000 / float(env["SERVICE_MS"])
    load = variant.load
    assert load.model == "open" and env["MAX_QUEUE"] == "none"
    assert load.start_level == 0.1 * capacity
    assert load.peak_level == 1.5 * capacity
    assert [s.target for s in load.stages] == sorted(s.target for s in load.stages)
    assert load.total_duration_s <= 60  # the whole ramp within about a minute
    assert load.max_in_flight >= 1000  # the backlog is measured, never dropped
