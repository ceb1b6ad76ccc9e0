"""Bad input in the scale-out tables (``[target] replicas``, ``[balancer]``, ``[autoscale]``,
``[[faults]]``): one line naming the file, the field and what is allowed, exit 2, nothing
started and no results database made. And what a good file resolves to."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from lab.cli import main
from lab.plan import plan_runs
from lab.spec import load_experiment
from tests.conftest import one_line_error, write_experiment

HEAD = """
[experiment]
title = "scale"
[target]
app = "targets.testing:app"
{target}
[load]
vus = 2
duration = "10s"
[[load.requests]]
path = "/"
"""


def _bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         body: str) -> str:
    monkeypatch.chdir(tmp_path)
    path = write_experiment(tmp_path, body)
    db = tmp_path / "results.db"
    previous = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as ended:
            main(["run", str(path), "--db", str(db)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    out, err = capsys.readouterr()
    line = one_line_error(int(ended.value.code or 0), out, err)
    assert not db.exists()
    assert line.startswith(str(path)), line
    return line


CASES = {
    "unknown method": ("replicas = 2", '[balancer]\nmethod = "fastest"',
                       ["balancer.method", "round_robin", "least_conn", "random_two"]),
    "hash without key": ("replicas = 2", '[balancer]\nmethod = "hash"',
                         ["balancer.hash_key", "needs a hash_key"]),
    "key without hash": ("replicas = 2", '[balancer]\nhash_key = "$http_x_user"',
                         ["balancer.hash_key", "applies only to method"]),
    "key not a variable": ("replicas = 2", '[balancer]\nmethod = "hash"\nhash_key = "x; evil"',
                           ["balancer.hash_key", "nginx variable"]),
    "key with a tab": ("replicas = 2", '[balancer]\nmethod = "hash"\nhash_key = "$http_x\\t"',
                       ["balancer.hash_key", "nginx variable", "'$http_x\\t'"]),
    "min above max": ("replicas = 2", ('[balancer]\n[autoscale]\ntarget = 0.6\n'
                                        'min_replicas = 5\nmax_replicas = 3'),
                      ["autoscale.min_replicas", "at most max_replicas (3)"]),
    "target zero": ("", '[balancer]\n[autoscale]\ntarget = 0\nmax_replicas = 3',
                    ["autoscale.target", "must be > 0"]),
    "target negative": ("", '[balancer]\n[autoscale]\ntarget = -1\nmax_replicas = 3',
                        ["autoscale.target", "must be > 0"]),
    "autoscale without balancer": ("", "[autoscale]\ntarget = 0.6\nmax_replicas = 3",
                                   ["autoscale", "needs a [balancer]"]),
    "replicas without balancer": ("replicas = 3", "", ["target.replicas", "need a [balancer]"]),
    "zero replicas fixed": ("replicas = 0", "[balancer]", ["target.replicas", "min_replicas = 0"]),
    "replicas outside range": ("replicas = 5", "[balancer]\n[autoscale]\ntarget = 0.6\nmax_replicas = 3",
                               ["target.replicas", "1..3"]),
    "unknown metric": ("", '[balancer]\n[autoscale]\nmetric = "memory"\ntarget = 1\nmax_replicas = 3',
                       ["autoscale.metric", "utilization"]),
    "fault replica missing": ("replicas = 2", ('[balancer]\n[[faults]]\nat = "2s"\n'
                                                'action = "kill_replica"\nreplica = 2'),
                              ["faults[0].replica", "no replica 2"]),
    "fault after the end": ("replicas = 2", '[balancer]\n[[faults]]\nat = "20s"\naction = "kill_replica"',
                            ["faults[0].at", "before the end"]),
    "unknown fault": ("replicas = 2", '[balancer]\n[[faults]]\nat = "2s"\naction = "pause"',
                      ["faults[0].action", "kill_replica"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_scaling_input_is_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    target, tail, needles = CASES[case]
    line = _bad(tmp_path, capsys, monkeypatch, HEAD.format(target=target) + tail + "\n")
    for needle in needles:
        assert needle in line, (case, line)


def test_replicas_with_a_url_target(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    body = HEAD.format(target="").replace('app = "targets.testing:app"',
                                          'url = "http://127.0.0.1:9"\nreplicas = 2')
    line = _bad(tmp_path, capsys, monkeypatch, body)
    assert "target.replicas" in line and "only to 'app' targets" in line, line


def test_balancer_with_a_url_target(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    body = HEAD.format(target="").replace('app = "targets.testing:app"',
                                          'url = "http://127.0.0.1:9"') + "[balancer]\n"
    line = _bad(tmp_path, capsys, monkeypatch, body)
    assert "balancer" in line and "only to 'app' targets" in line, line


def test_a_variant_override_is_located_in_the_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    body = (HEAD.format(target="replicas = 2") + '[balancer]\n[[variants]]\nname = "a"\n'
            '[[variants]]\nname = "b"\nbalancer = { method = "hash" }\n')
    line = _bad(tmp_path, capsys, monkeypatch, body)
    assert "variants[1].balancer.hash_key" in line, line


@pytest.mark.parametrize(("top", "needle"), [
    ("[autoscale]\ntarget = 0.6\nmax_replicas = 3\n", "add autoscale = false"),
    ("", "leaves 2 replicas without a balancer"),
])
def test_a_variant_turning_the_balancer_off_is_located_in_the_variant(
        top: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = (HEAD.format(target="replicas = 2") + "[balancer]\n" + top
            + '[[variants]]\nname = "a"\n[[variants]]\nname = "b"\nbalancer = false\n')
    line = _bad(tmp_path, capsys, monkeypatch, body)
    written = (tmp_path / "exp.toml").read_text().splitlines()
    assert f":{written.index('balancer = false') + 1}: variants[1].balancer: false leaves" in line, line
    assert needle in line, line


def test_variants_resolve_balancer_autoscale_and_faults(tmp_path: Path) -> None:
    body = (HEAD.format(target="replicas = 2")
            + '[balancer]\nmethod = "least_conn"\n'
            + '[autoscale]\ntarget = 0.6\nmax_replicas = 4\n'
            + '[[faults]]\nat = "3s"\naction = "kill_replica"\nreplica = 1\n'
            + '[[variants]]\nname = "hpa"\n'
            + '[[variants]]\nname = "fixed"\nautoscale = false\nfaults = []\n'
            + '[[variants]]\nname = "rr"\nbalancer = { method = "round_robin" }\n'
            + 'autoscale = { scale_down_window = "0s" }\n'
            + '[[variants]]\nname = "alone"\nbalancer = false\nautoscale = false\nfaults = []\n'
            + 'target = { replicas = 1 }\n')
    plans = {p.variant: p for p in plan_runs(load_experiment(write_experiment(tmp_path, body)))}
    hpa, fixed, rr, alone = plans["hpa"], plans["fixed"], plans["rr"], plans["alone"]
    assert hpa.balancer and hpa.balancer.method == "least_conn"
    assert hpa.autoscale and hpa.autoscale.max_replicas == 4 and hpa.autoscale.scale_down_window == 30
    assert [f.replica for f in hpa.faults] == [1] and hpa.faults[0].at == 3.0
    assert fixed.autoscale is None and fixed.faults == () and fixed.replicas == 2
    assert rr.balancer and rr.balancer.method == "round_robin"
    assert rr.autoscale and rr.autoscale.scale_down_window == 0 and rr.autoscale.target == 0.6
    assert alone.balancer is None and alone.replicas == 1
    config = json.loads(json.dumps(hpa.config()))
    assert config["balancer"]["method"] == "least_conn"
    assert config["autoscale"]["sync_period"] == 1.0 and config["replicas"] == 2
    assert "balancer" not in alone.config()


def test_initial_replicas_default_to_min_or_one(tmp_path: Path) -> None:
    scaler = "[balancer]\n[autoscale]\ntarget = 0.5\nmin_replicas = 0\nmax_replicas = 3\n"
    body = HEAD.format(target="") + scaler
    plan = plan_runs(load_experiment(write_experiment(tmp_path, body)))[0]
    assert plan.replicas == 1
    body = HEAD.format(target="replicas = 0") + scaler
    assert plan_runs(load_experiment(write_experiment(tmp_path, body)))[0].replicas == 0


def test_doctor_names_the_experiments_that_need_nginx(tmp_path: Path) -> None:
    from lab.doctor import _uses

    write_experiment(tmp_path, HEAD.format(target="replicas = 2") + "[balancer]\n"
                     + '[[variants]]\nname = "lb"\n[[variants]]\nname = "alone"\nbalancer = false\n'
                     + "target = { replicas = 1 }\n", name="mixed")
    write_experiment(tmp_path, HEAD.format(target="replicas = 2") + "[balancer]\n", name="all")
    write_experiment(tmp_path, HEAD.format(target=""), name="none")
    (tmp_path / "broken.toml").write_text("[experiment\n")
    uses = _uses(tmp_path)
    assert uses["nginx"].startswith("all, mixed (lb), benchmarks/generator.py"), uses
    assert uses["redis"] == "no experiment here"


def test_seconds_above_the_slo_and_the_longest_stretch() -> None:
    from dataclasses import dataclass

    from lab.analysis.slo import slo_figures

    @dataclass
    class Iv:
        t_s: float
        duration_s: float
        ok: int
        errors: int
        p99_ms: float | None

    ivs = [Iv(0, 1, 10, 0, 500.0),  # warm-up: not judged
           Iv(1, 1, 10, 0, 50.0), Iv(2, 1, 10, 0, 150.0), Iv(3, 1, 0, 5, None),  # all errors: above
           Iv(4, 1, 0, 0, None),  # idle: neither
           Iv(5, 1, 10, 0, 101.0), Iv(6, 1, 10, 0, 100.0), Iv(7, 1, 10, 0, 120.0)]
    f = slo_figures(ivs, 100.0, warmup_s=1.0)
    assert (f.seconds_above, f.longest_above_s, f.stretches, f.seconds_measured) == (4.0, 3.0, 2, 6.0)
    assert slo_figures(ivs, 1000.0, 1.0).seconds_above == 1.0  # only the all-errors second


@pytest.mark.parametrize(("tail", "needles"), [
    ('[balancer]\n[autoscale]\ntarget = 0.5\nmax_replicas = 3\n'
     'scale_up_policies = [{ type = "pods", value = 0.5, period = "1s" }]',
     ["autoscale.scale_up_policies[0].value", "whole replicas"]),
    ('[balancer]\n[autoscale]\ntarget = 5\nmax_replicas = 3', ["autoscale.target", "busy fraction 0..1"]),
])
def test_autoscale_settings_that_could_never_act(tail: str, needles: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    line = _bad(tmp_path, capsys, monkeypatch, HEAD.format(target="") + tail + "\n")
    for needle in needles:
        assert needle in line, line


def test_a_metric_read_from_stats_needs_the_stats_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    body = HEAD.format(target='stats_path = ""') + "[balancer]\n[autoscale]\ntarget = 0.5\nmax_replicas = 3\n"
    line = _bad(tmp_path, capsys, monkeypatch, body)
    assert "autoscale" in line and "stats_path" in line and "cpu" in line, line
