"""The pure parts of cluster runs: addresses, where the cluster comes from (``--cluster``,
``LAB_CLUSTER``, ``[load] cluster``), the per-generator busy rule and how it names a
worker, clock offsets, and the caption that says where the load came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis.bound import generator_bound
from lab.analysis.summary import summarise
from lab.cluster.address import parse_cluster
from lab.cluster.checks import is_loopback_url
from lab.errors import InputError, SpecError
from lab.events import GeneratorInfo, GeneratorsReady
from lab.figures import IntervalCounts
from lab.session import LoadOverrides, prepare
from lab.spec import load_experiment
from tests.conftest import write_experiment

EXPERIMENT = """
[experiment]
title = "t"

[target]
app = "targets.testing:app"

[load]
vus = 4
duration = "2s"
{extra}
requests = [{{ path = "/fast" }}]
"""


@pytest.mark.parametrize("text", ["local:1", "local:64", "tcp://10.0.0.7:8786", "tcp://host-b.lan:8786",
                                  "tls://[::1]:8786"])
def test_cluster_addresses_the_lab_takes(text: str) -> None:
    address = parse_cluster(text)
    assert address.text == text
    assert address.is_local == text.startswith("local:")


@pytest.mark.parametrize("text, says", [("local:0", "1..64"), ("local:65", "1..64"),
                                        ("10.0.0.7:8786", "allowed: local:N"),
                                        ("tcp://host", "allowed: local:N"),
                                        ("http://host:8786", "allowed: local:N")])
def test_cluster_addresses_the_lab_refuses_say_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_cluster(text)
    assert says in str(err.value)


def test_the_cluster_comes_from_the_option_then_the_environment_then_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = load_experiment(write_experiment(tmp_path, EXPERIMENT.format(extra='cluster = "local:3"')))
    monkeypatch.delenv("LAB_CLUSTER", raising=False)
    assert prepare(exp).plans[0].load.cluster == "local:3"
    monkeypatch.setenv("LAB_CLUSTER", "tcp://127.0.0.1:8786")
    assert prepare(exp).plans[0].load.cluster == "tcp://127.0.0.1:8786"
    over = prepare(exp, overrides=LoadOverrides(cluster="local:2"))
    assert over.plans[0].load.cluster == "local:2"


def test_bad_cluster_settings_are_one_line_naming_where_they_came_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_experiment(tmp_path, EXPERIMENT.format(extra=""))
    exp = load_experiment(path)
    monkeypatch.setenv("LAB_CLUSTER", "localhost:8786")
    with pytest.raises(InputError) as err:
        prepare(exp)
    assert str(err.value).startswith(f"{path}: LAB_CLUSTER: 'localhost:8786' is not a cluster address")
    monkeypatch.delenv("LAB_CLUSTER")
    with pytest.raises(InputError) as err:
        prepare(exp, overrides=LoadOverrides(cluster="local:2", workers=3))
    assert "--workers" in str(err.value) and "Dask workers" in str(err.value)
    bad = write_experiment(tmp_path, EXPERIMENT.format(extra='cluster = "local:100"'), name="bad")
    with pytest.raises(SpecError) as spec_err:
        load_experiment(bad)
    assert "load.cluster" in str(spec_err.value) and "1..64" in str(spec_err.value)


def test_only_loopback_urls_are_this_machines_alone() -> None:
    assert is_loopback_url("http://127.0.0.1:8000") and is_loopback_url("http://localhost/x")
    assert is_loopback_url("http://[::1]:80")
    assert not is_loopback_url("http://10.0.0.7:8000") and not is_loopback_url("https://staging.example")


def _iv(t: float, *cpus: float | None) -> IntervalCounts:
    known = [c for c in cpus if c is not None]
    return IntervalCounts(t_s=t, duration_s=1.0, ok=10, errors=0, dropped=0, interrupted=0, bytes=0,
                          errors_by_class={}, histogram=b"", histogram_all=b"", histogram_service=b"",
                          generator_cpu_percent=max(known) if known else None,
                          generator_cpu_by_worker=tuple(cpus))


def test_a_busy_generator_is_judged_on_its_own_and_named() -> None:
    # Worker 1 stays busy for 4 s; worker 0 is busy on alternate seconds only.
    run = [_iv(t, 95.0 if t % 2 else 20.0, 97.0 if t >= 1 else 30.0) for t in range(5)]
    verdict = generator_bound(run, labels={0: "host-a, worker 0", 1: "host-b, worker 1"})
    assert verdict is not None and verdict.busy_s == 4.0
    assert verdict.reason == "host-b, worker 1: 97% CPU for 4s (at >= 90% throughout)"
    assert "host-b, worker 1" in verdict.headline
    stored = summarise(run, [], 0.0)
    assert stored is not None
    assert stored.generator_bound_reason == "worker 1: 97% CPU for 4s (at >= 90% throughout)"


def test_workers_busy_by_turns_are_not_a_busy_generator() -> None:
    # The busiest worker is always above 90 %, but no one worker stays there 3 s.
    run = [_iv(t, 95.0 if t % 2 else 20.0, 20.0 if t % 2 else 95.0) for t in range(6)]
    assert generator_bound(run) is None


def test_clock_offsets_over_50_ms_are_flagged_and_the_caption_counts_hosts() -> None:
    gens = (GeneratorInfo(0, "host-a", 11, "tcp://10.0.0.1:1", 3.0),
            GeneratorInfo(1, "host-a", 12, "tcp://10.0.0.1:2", -49.9),
            GeneratorInfo(2, "host-b", 13, "tcp://10.0.0.2:1", 51.0),
            GeneratorInfo(3, "host-b", 14, "tcp://10.0.0.2:2", -120.0))
    assert [g.clock_off for g in gens] == [False, False, True, True]
    ready = GeneratorsReady("k", "dask", "tcp://sched:8786", "tcp://sched:8786", gens)
    assert ready.load_from() == "4 generator workers on 2 hosts (dask)"
    assert gens[2].label == "host-b, worker 2"
    local = GeneratorsReady("k", "local", None, None, (GeneratorInfo(0, "me", 1),))
    assert local.load_from() == "1 generator worker" and local.generators[0].label == "worker 0"


def test_target_host_names_one_address_for_started_targets(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, EXPERIMENT.format(extra=""))
    exp = load_experiment(path)
    (plan,) = prepare(exp, overrides=LoadOverrides(target_host="127.0.0.2")).plans
    assert plan.target.host == "127.0.0.2"
    for bad, says in [("0.0.0.0", "listens everywhere"), ("staging", "not an IP address")]:
        with pytest.raises(InputError) as err:
            prepare(exp, overrides=LoadOverrides(target_host=bad))
        assert str(err.value).startswith(f"{path}: --target-host: ") and says in str(err.value)


def test_a_loopback_target_is_out_of_reach_of_workers_on_other_machines() -> None:
    from lab.cluster.checks import WorkerFacts, cannot_reach

    here = WorkerFacts("tcp://127.0.0.1:4000", "lab-host", "a", True, True)
    there = WorkerFacts("tcp://10.0.0.2:4000", "host-b", "b", True, False)
    assert cannot_reach([here, there], "http://127.0.0.1:8000") == there
    assert cannot_reach([here], "http://127.0.0.1:8000") is None
    assert cannot_reach([here, there], "http://10.0.0.5:8000") is None


def test_a_lagging_generator_is_named_from_its_own_histogram() -> None:
    from lab.load.histogram import LatencyHistogram

    def lag(ms: float) -> bytes:
        h = LatencyHistogram()
        for _ in range(100):
            h.record_s(ms / 1000)
        return h.encode()

    run = []
    for t in range(4):
        merged = LatencyHistogram()
        for blob in (lag(2.0), lag(30.0)):
            merged.merge_encoded(blob)
        run.append(IntervalCounts(t_s=t, duration_s=1.0, ok=10, errors=0, dropped=0, interrupted=0,
                                  bytes=0, errors_by_class={}, histogram=b"", histogram_all=b"",
                                  histogram_service=b"", generator_cpu_percent=40.0,
                                  histogram_lag=merged.encode(), generator_cpu_by_worker=(40.0, 35.0),
                                  histogram_lag_by_worker=(lag(2.0), lag(30.0))))
    verdict = generator_bound(run, labels={1: "host-b, worker 1"})
    assert verdict is not None and verdict.busy_s is None and verdict.lag_p99_ms is not None
    assert verdict.reason.endswith("> 10 ms (worst: host-b, worker 1, 30.0 ms)"), verdict.reason


def test_a_clock_offset_within_half_the_round_trip_is_no_offset() -> None:
    from lab.cluster.task import clock_offset_ms

    # The scheduler reads 0.06 s ahead, over a 0.2 s round trip: it may be exactly in step.
    assert clock_offset_ms(0.06, 0.2) == 0.0
    # 0.3 s behind over a 0.02 s round trip: this machine is at least 290 ms ahead.
    assert clock_offset_ms(-0.3, 0.02) == 290.0
    assert clock_offset_ms(0.08, 0.004) == -78.0
