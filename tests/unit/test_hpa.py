"""The HPA decision rule (lab.autoscale): the worked examples and edge cases of the Kubernetes
documentation, each test quoting the sentence it checks, and the replay requirement.

Doc: https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/
Controller: kubernetes/kubernetes pkg/controller/podautoscaler/{replica_calculator,horizontal}.go
"""

from __future__ import annotations

import ast
import math
import random
from pathlib import Path

import pytest

import lab.autoscale
from lab.autoscale import (
    Autoscaler,
    DecisionInput,
    HpaSettings,
    ReplicaMetric,
    ScalingPolicy,
    desired_replicas,
    lab_settings,
    replay,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)


def ready(*values: float | None) -> list[ReplicaMetric]:
    return [ReplicaMetric(i, v, True) for i, v in enumerate(values)]


def settings(**kw: object) -> HpaSettings:
    base: dict[str, object] = dict(metric="in_flight", target=100.0, min_replicas=1, max_replicas=50)
    base.update(kw)
    return HpaSettings(**base)  # type: ignore[arg-type]


# --- step 1: the replica calculator -------------------------------------------------------

def test_the_formula_doubles_at_twice_the_target_and_halves_at_half() -> None:
    """"if the current metric value is 200m, and the desired value is 100m, the number of
    replicas will be doubled ... If the current value is instead 50m, you'll halve the
    number of replicas"."""
    assert desired_replicas(3, ready(200, 200, 200), 100).replicas == 6
    assert desired_replicas(4, ready(50, 50, 50, 50), 100).replicas == 2
    rec = desired_replicas(3, ready(200, 200, 200), 100)
    assert (rec.metric_value, rec.ratio) == (200, 2.0)


def test_the_mean_is_taken_across_replicas_and_rounded_up() -> None:
    """"the currentMetricValue is computed by taking the average of the given metric across
    all Pods"; desiredReplicas = ceil[currentReplicas × currentMetricValue / desiredMetricValue]."""
    # mean 130 → ratio 1.3 → ceil(3 × 1.3) = ceil(3.9) = 4
    assert desired_replicas(3, ready(100, 130, 160), 100).replicas == 4
    # twice the target stays twice despite float arithmetic (the mean / target here is
    # 2.0000000000000004, and 3 × that would round up to 7)
    assert desired_replicas(3, ready(0.2, 0.2, 0.2), 0.1).replicas == 6


@pytest.mark.parametrize("value", [95, 105, 110, 90])
def test_no_change_within_the_tolerance(value: float) -> None:
    """"The control plane skips any scaling action if the ratio is sufficiently close to 1.0
    (within a configurable tolerance, 0.1 by default)"."""
    rec = desired_replicas(5, ready(*[value] * 5), 100, tolerance=0.1)
    assert rec.replicas == 5
    assert "within tolerance" in rec.note


def test_just_outside_the_tolerance_scales() -> None:
    assert desired_replicas(5, ready(*[111] * 5), 100, tolerance=0.1).replicas == 6
    assert desired_replicas(5, ready(*[89] * 5), 100, tolerance=0.1).replicas == 5  # ceil(4.45)
    assert desired_replicas(5, ready(*[79] * 5), 100, tolerance=0.1).replicas == 4


def test_missing_values_count_as_the_target_on_a_scale_down() -> None:
    """"assuming those pods were consuming 100% of the desired value in case of a scale
    down" (a plain metric: the target itself)."""
    # ready mean 20 → ratio 0.2 (down); recomputed with two at 100: (20+20+100+100)/4 = 60
    rec = desired_replicas(4, ready(20, 20, None, None), 100)
    assert rec.metric_value == pytest.approx(60)
    assert rec.replicas == 3  # ceil(4 × 0.6) = ceil(2.4); without the rule: ceil(2 × 0.2) = 1


def test_a_missing_utilization_counts_as_a_full_replica_on_a_scale_down() -> None:
    """For resource metrics the controller counts a missing pod at 100 % of its request
    (or the target when higher): a busy fraction of 1.0, not the target 0.6."""
    rec = desired_replicas(4, ready(0.1, 0.1, None, None), 0.6, metric="utilization")
    assert rec.metric_value == pytest.approx(0.55)
    assert rec.replicas == 4  # ratio 0.917: within the tolerance once the missing count fully
    as_plain = desired_replicas(4, ready(0.1, 0.1, None, None), 0.6, metric="in_flight")
    assert as_plain.replicas == 3  # (0.1+0.1+0.6+0.6)/4 / 0.6 = 0.583 → ceil(2.33)


def test_missing_values_count_as_zero_on_a_scale_up() -> None:
    """"and 0% in case of a scale up. This dampens the magnitude of any potential scale"."""
    rec = desired_replicas(4, ready(300, 300, None, None), 100)
    assert rec.metric_value == pytest.approx(150)
    assert rec.replicas == 6  # ceil(4 × 1.5)
    rec = desired_replicas(3, ready(300, 300, None), 100)
    assert rec.replicas == 6  # ceil(3 × 2.0) = 6, not ceil(3 × 3.0) = 9 with the missing ignored


def test_not_ready_replicas_count_as_zero_on_a_scale_up() -> None:
    """"if any not-yet-ready pods were present, and the workload would have scaled up ...
    the controller conservatively assumes that the not-yet-ready pods are consuming 0% of
    the desired metric"."""
    metrics = [*ready(300, 300), ReplicaMetric(2, None, False), ReplicaMetric(3, 50, False)]
    rec = desired_replicas(4, metrics, 100)
    assert rec.metric_value == pytest.approx(150)
    assert rec.replicas == 6
    assert "2 not ready counted as 0" in rec.note


def test_not_ready_replicas_are_left_out_of_a_scale_down() -> None:
    """Not-ready pods are set aside; only a scale-up brings them back (as 0)."""
    metrics = [*ready(40, 40), ReplicaMetric(2, 500, False)]
    assert desired_replicas(3, metrics, 100).replicas == 1  # ceil(2 × 0.4)


def test_a_recomputed_ratio_within_the_tolerance_changes_nothing() -> None:
    """"If the new ratio reverses the scale direction, or is within the tolerance, the
    controller doesn't take any scaling action"."""
    # 8 ready at 1.357 × target, 2 not ready: recomputed 1.086 → within 0.1
    metrics = [*ready(*[135.7] * 8), ReplicaMetric(8, None, False), ReplicaMetric(9, None, False)]
    rec = desired_replicas(10, metrics, 100)
    assert rec.replicas == 10
    assert "within tolerance" in rec.note


def test_a_recomputed_ratio_that_reverses_direction_changes_nothing() -> None:
    """"If the new ratio reverses the scale direction ... the controller doesn't take any
    scaling action"."""
    # ready mean 120 → up; with two missing at 0: (120+120)/4 = 60 → would be a scale-down
    rec = desired_replicas(4, ready(120, 120, None, None), 100)
    assert rec.replicas == 4
    assert "reverses the direction" in rec.note


def test_no_value_from_any_ready_replica_skips_the_sync() -> None:
    rec = desired_replicas(3, [ReplicaMetric(0, None, True), ReplicaMetric(1, 80, False)], 100)
    assert (rec.replicas, rec.usable, rec.metric_value) == (3, False, None)


# --- step 2: stabilization ------------------------------------------------------------------

def test_the_scale_down_window_applies_the_highest_recommendation_in_it() -> None:
    """"When the metrics indicate that the target should be scaled down the algorithm looks
    into previously computed desired states, and uses the highest value from the specified
    interval"."""
    history = [(0.0, 4), (10.0, 7), (20.0, 5)]
    assert stabilize(7, 2, history, t_s=25.0, up_window_s=0, down_window_s=30) == 7
    assert stabilize(7, 2, history, t_s=35.0, up_window_s=0, down_window_s=30) == 7  # (10, 7) in
    assert stabilize(7, 2, history, t_s=40.0, up_window_s=0, down_window_s=30) == 5  # 30 s old: out
    assert stabilize(7, 2, history, t_s=41.0, up_window_s=0, down_window_s=30) == 5  # only (20, 5)
    assert stabilize(7, 2, history, t_s=51.0, up_window_s=0, down_window_s=30) == 2


def test_the_scale_up_window_applies_the_lowest_recommendation_in_it() -> None:
    history = [(0.0, 3), (5.0, 6)]
    assert stabilize(3, 8, history, t_s=6.0, up_window_s=10, down_window_s=0) == 3
    assert stabilize(3, 8, history, t_s=11.0, up_window_s=10, down_window_s=0) == 6


def test_a_scale_down_waits_out_the_window_in_the_autoscaler() -> None:
    """"This means that scaledowns will occur gradually, smoothing out the impact of rapidly
    fluctuating metric values" (the window is a rolling maximum)."""
    scaler = Autoscaler(settings(scale_down_window_s=30.0, max_replicas=10))
    assert scaler.decide(0, 2, ready(200, 200)).desired == 4
    decisions = [scaler.decide(t, 4, ready(25, 25, 25, 25)) for t in range(1, 30)]
    assert {d.desired for d in decisions} == {4}
    assert decisions[0].reason == ("ratio 0.25 < 0.9, wants 1; scale-down window holds 4 "
                                   "(highest in 30 s): holds 4")
    assert scaler.decide(30, 4, ready(25, 25, 25, 25)).desired == 1  # (0, 4) has left the window


def test_the_count_found_at_the_first_sync_is_a_recommendation() -> None:
    """The controller records the current count as the first recommendation
    (``recordInitialRecommendation`` in horizontal.go), so a target found at 6 under low load
    is not shrunk before the scale-down window has passed."""
    scaler = Autoscaler(settings(scale_down_window_s=30.0))
    assert scaler.decide(0, 6, ready(*[10] * 6)).desired == 6
    assert scaler.decide(29, 6, ready(*[10] * 6)).desired == 6
    assert scaler.decide(30, 6, ready(*[10] * 6)).desired == 1


def test_without_a_window_the_autoscaler_follows_every_swing() -> None:
    scaler = Autoscaler(settings(scale_down_window_s=0.0, max_replicas=10))
    swings = [scaler.decide(t, cur, ready(*[v] * cur)).desired
              for t, (cur, v) in enumerate([(2, 200), (4, 25), (1, 400), (4, 25)])]
    assert swings == [4, 1, 4, 1]


# --- step 3: policies and bounds -------------------------------------------------------------

POLICIES_UP = (ScalingPolicy("percent", 100, 15), ScalingPolicy("pods", 4, 15))


def test_default_scale_up_adds_100_percent_or_4_pods_whichever_is_more() -> None:
    """"There are 2 policies where 4 pods or a 100% of the currently running replicas may
    at most be added every 15 seconds"; "the policy which allows the highest amount of
    change is the policy which is selected by default"."""
    assert scale_up_limit(2, [], [], POLICIES_UP, "max", 0)[0] == 6   # 4 pods > 100 %
    assert scale_up_limit(10, [], [], POLICIES_UP, "max", 0)[0] == 20  # 100 % > 4 pods
    limit, policy = scale_up_limit(10, [], [], POLICIES_UP, "min", 0)
    assert (limit, policy) == (14, POLICIES_UP[1])


def test_the_doc_scale_down_example_80_replicas() -> None:
    """"if there are 80 replicas and the target has to be scaled down to 10 replicas then
    during the first step 8 replicas will be reduced. In the next iteration when the number
    of replicas is 72, 10% of the pods is 7.2 but the number is rounded up to 8 ... When the
    number of replicas falls below 40 the first policy (Pods) is applied and 4 replicas will
    be reduced at a time"."""
    down = (ScalingPolicy("pods", 4, 60), ScalingPolicy("percent", 10, 60))
    scaler = Autoscaler(settings(min_replicas=1, max_replicas=100, scale_down_window_s=0.0,
                                 scale_down_policies=down))
    steps, current, t = [], 80, 0.0
    while current > 10:
        d = scaler.decide(t, current, ready(*[1000 / current] * current))  # a total of 10 × target
        steps.append((current, current - d.desired))
        current, t = d.desired, t + 60.0
    assert steps[:2] == [(80, 8), (72, 8)]
    assert {removed for at, removed in steps if 12 < at <= 40} == {4}
    assert steps[-1] == (12, 2)  # the last step stops at the 10 wanted


def test_scale_down_below_40_removes_4_at_a_time() -> None:
    down = (ScalingPolicy("pods", 4, 60), ScalingPolicy("percent", 10, 60))
    assert scale_down_limit(40, [], [], down, "max", 0)[0] == 36
    assert scale_down_limit(39, [], [], down, "max", 0)[0] == 35
    assert scale_down_limit(72, [], [], down, "max", 0)[0] == 64  # 7.2 rounded up to 8


def test_policy_periods_count_past_scale_events() -> None:
    """"periodSeconds indicates the length of time in the past for which the policy must
    hold true": a replica added inside the period counts against it."""
    pods = (ScalingPolicy("pods", 4, 15),)
    assert scale_up_limit(6, [(10.0, 4)], [], pods, "max", t_s=20.0)[0] == 6  # started at 2
    assert scale_up_limit(6, [(10.0, 4)], [], pods, "max", t_s=25.0)[0] == 10  # event left
    assert scale_up_limit(6, [(10.0, 4)], [(12.0, 2)], pods, "max", t_s=20.0)[0] == 8


def test_the_autoscaler_is_held_to_4_pods_per_period() -> None:
    pods = (ScalingPolicy("pods", 4, 15.0),)
    scaler = Autoscaler(settings(max_replicas=50, scale_up_policies=pods))
    d1 = scaler.decide(0, 2, ready(1000, 1000))  # wants 20
    assert (d1.recommended, d1.desired) == (20, 6)
    assert d1.reason == "ratio 10.00 > 1.1, wants 20; limited by policy pods 4 per 15 s: 2 → 6"
    assert scaler.decide(5, 6, ready(*[1000] * 6)).desired == 6  # the 4 of this period are used
    assert scaler.decide(15, 6, ready(*[1000] * 6)).desired == 10  # a new period


def test_clamped_to_max_replicas() -> None:
    """"provided that this isn't larger than the overall maximum that you configured"."""
    scaler = Autoscaler(settings(max_replicas=6))
    d = scaler.decide(0, 4, ready(*[1000] * 4))
    assert d.desired == 6
    assert d.reason.endswith("clamped to max 6: 4 → 6")


def test_clamped_to_min_replicas() -> None:
    scaler = Autoscaler(settings(min_replicas=2, scale_down_window_s=0.0))
    d = scaler.decide(0, 4, ready(1, 1, 1, 1))
    assert d.desired == 2
    assert "clamped to min 2" in d.reason


def test_a_current_count_outside_the_bounds_is_brought_back() -> None:
    scaler = Autoscaler(settings(min_replicas=2, max_replicas=5))
    assert scaler.decide(0, 9, ready(*[100] * 9)).desired == 5
    assert scaler.decide(1, 1, ready(1000)).desired == 2


def test_disabled_scale_down_never_removes_a_replica() -> None:
    """"The selectPolicy value of Disabled turns off scaling the given direction"."""
    scaler = Autoscaler(settings(scale_down_window_s=0.0, scale_down_select="disabled"))
    d = scaler.decide(0, 5, ready(*[1] * 5))
    assert d.desired == 5
    assert "scale-down disabled" in d.reason


# --- zero ------------------------------------------------------------------------------------

def test_scale_from_zero_when_a_request_waits() -> None:
    scaler = Autoscaler(settings(min_replicas=0, scale_down_window_s=30.0))
    assert scaler.decide(0, 0, []).desired == 0
    d = scaler.decide(1, 0, [], demand=True)
    assert (d.desired, d.reason) == (1, "scale from zero: a request is waiting: 0 → 1")


def test_scale_to_zero_after_the_window_without_activity() -> None:
    """The lab's KEDA model: 1 → 0 once nothing was active for the cooldown (the window)."""
    scaler = Autoscaler(settings(min_replicas=0, scale_down_window_s=30.0))
    assert scaler.decide(0, 1, ready(50)).desired == 1
    assert [scaler.decide(t, 1, ready(0)).desired for t in (10, 20, 29)] == [1, 1, 1]
    d = scaler.decide(30, 1, ready(0))
    assert d.desired == 0
    assert "scale to zero" in d.reason
    # a request waiting while replicas run is activity too
    scaler = Autoscaler(settings(min_replicas=0, scale_down_window_s=30.0))
    scaler.decide(0, 1, ready(0))
    scaler.decide(20, 1, ready(0), demand=True)
    assert scaler.decide(40, 1, ready(0)).desired == 1


def test_min_one_never_goes_to_zero() -> None:
    scaler = Autoscaler(settings(min_replicas=1, scale_down_window_s=0.0))
    assert [scaler.decide(t, 1, ready(0)).desired for t in range(0, 100, 10)] == [1] * 10


def test_zero_replicas_with_a_minimum_is_the_documented_maintenance_mode() -> None:
    """"If the target's desired replica count is set to 0, and the HPA's minimum replica
    count is greater than 0, the HPA stops adjusting the target"."""
    d = Autoscaler(settings(min_replicas=1)).decide(0, 0, [], demand=True)
    assert d.desired == 0
    assert "scaling disabled" in d.reason


# --- settings, inputs ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "field"), [
    (dict(min_replicas=7, max_replicas=6), "min_replicas"),
    (dict(target=0.0), "target"),
    (dict(target=-1.0), "target"),
    (dict(metric="latency"), "metric"),
    (dict(max_replicas=0, min_replicas=0), "max_replicas"),
    (dict(tolerance=-0.1), "tolerance"),
    (dict(scale_up_policies=()), "scale_up_policies"),
    (dict(scale_down_select="most"), "scale_down_select"),
])
def test_bad_settings_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        settings(**kw)


def test_bad_policies_and_values_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        ScalingPolicy("pods", 1.5, 15)
    with pytest.raises(ValueError, match="period"):
        ScalingPolicy("percent", 10, 0)
    with pytest.raises(ValueError, match="replica 2"):
        ReplicaMetric(2, float("nan"), True)
    scaler = Autoscaler(settings())
    scaler.decide(5, 1, ready(100))
    with pytest.raises(ValueError, match="back in time"):
        scaler.decide(4, 1, ready(100))


def test_lab_settings_shorten_only_the_time_constants() -> None:
    s = lab_settings("utilization", 0.6, 1, 6)
    assert (s.sync_period_s, s.scale_down_window_s, s.scale_up_window_s, s.tolerance) == (1.0, 30.0, 0.0, 0.1)
    assert [(p.type, p.value, p.period_s) for p in s.scale_up_policies] == [("percent", 100, 1.0),
                                                                           ("pods", 4, 1.0)]
    assert lab_settings("rps", 50, 0, 4, scale_down_window_s=0.0).scale_down_window_s == 0.0
    with pytest.raises(ValueError, match="^min_replicas: "):
        lab_settings("rps", 50, 5, 4)


# --- replay and properties -----------------------------------------------------------------------

def _random_run(rng: random.Random, n: int) -> tuple[HpaSettings, list[DecisionInput], list]:
    """A random autoscaler driven in a loop: the count it decides is applied at once; some
    replicas miss values or are not ready. Returns the inputs and the live decisions."""
    policies_up = tuple(ScalingPolicy(rng.choice(["percent", "pods"]), rng.randint(1, 150),
                                      rng.choice([1.0, 3.0, 15.0])) for _ in range(rng.randint(1, 2)))
    policies_down = tuple(ScalingPolicy(rng.choice(["percent", "pods"]), rng.randint(1, 100),
                                        rng.choice([1.0, 5.0])) for _ in range(rng.randint(1, 2)))
    lo = rng.randint(0, 3)
    s = HpaSettings(metric=rng.choice(["utilization", "in_flight", "rps", "cpu"]),
                    target=rng.choice([0.6, 5.0, 60.0]), min_replicas=lo,
                    max_replicas=rng.randint(max(lo, 1), 12), tolerance=rng.choice([0.0, 0.1, 0.3]),
                    scale_down_window_s=rng.choice([0.0, 5.0, 30.0]),
                    scale_up_window_s=rng.choice([0.0, 0.0, 3.0]),
                    scale_up_policies=policies_up, scale_down_policies=policies_down)
    scaler, t = Autoscaler(s), 0.0
    current = rng.randint(0 if lo == 0 else 1, s.max_replicas + 2)
    inputs, decisions = [], []
    for _ in range(n):
        t += rng.choice([0.5, 1.0, 1.0, 2.0])
        load = rng.choice([0.0, 0.1, 1.0, 3.0, 10.0]) * s.target
        metrics = tuple(ReplicaMetric(i, None if rng.random() < 0.1 else load * rng.uniform(0.5, 1.5),
                                      rng.random() > 0.15) for i in range(current))
        inp = DecisionInput(t, current, metrics, demand=rng.random() < 0.3)
        d = scaler.decide_input(inp)
        inputs.append(inp)
        decisions.append(d)
        current = d.desired
    return s, inputs, decisions


def _allowed(policy: ScalingPolicy, start: int, up: bool) -> int:
    """What one policy allows from the count at the start of its period, written out from
    the doc's sentences ("allows at most 4 replicas ... at most 10% of the current replicas")."""
    change = policy.value if policy.type == "pods" else start * policy.value / 100
    return start + math.ceil(change - 1e-9) if up else start - math.ceil(change - 1e-9)


@pytest.mark.parametrize("seed", range(40))
def test_desired_stays_in_bounds_and_within_the_policies_per_period(seed: int) -> None:
    rng = random.Random(seed)
    s, inputs, decisions = _random_run(rng, 200)
    moves: list[tuple[float, int]] = []  # (t_s, change) of every HPA scale event so far
    for inp, d in zip(inputs, decisions, strict=True):
        maintenance = d.current == 0 and s.min_replicas > 0
        assert s.min_replicas <= d.desired <= s.max_replicas or maintenance
        keda_step = d.current == 0 or d.desired == 0  # the 0 ↔ 1 steps are KEDA's, not the HPA's
        in_bounds = max(s.min_replicas, 1) <= d.current <= s.max_replicas
        if d.desired != d.current and not keda_step and in_bounds:
            def start(q: ScalingPolicy, current: int = d.current, t_s: float = inp.t_s) -> int:
                return current - sum(c for t, c in moves if t > t_s - q.period_s)
            if d.desired > d.current:
                assert d.desired <= max(_allowed(q, start(q), up=True) for q in s.scale_up_policies)
            else:
                assert d.desired >= min(_allowed(q, start(q), up=False) for q in s.scale_down_policies)
        if d.desired != d.current and not keda_step:
            moves.append((inp.t_s, d.desired - d.current))


def test_replay_recomputes_every_decision() -> None:
    """A stored run is recomputable: the same settings and inputs give the same decisions."""
    scale_events = 0
    for seed in range(20):
        s, inputs, decisions = _random_run(random.Random(1000 + seed), 150)
        assert replay(s, inputs) == decisions
        scale_events += sum(d.desired != d.current for d in decisions)
    assert scale_events > 100  # the runs did scale, windows and policies had history to read


def test_replay_sees_a_changed_input() -> None:
    s, inputs, decisions = _random_run(random.Random(7), 150)
    changed = next(i for i, d in enumerate(decisions) if d.desired > d.current and d.current > 0)
    inp = inputs[changed]
    inputs[changed] = DecisionInput(inp.t_s, inp.current, tuple(
        ReplicaMetric(m.replica, 0.0 if m.value is not None else None, m.ready) for m in inp.metrics),
        inp.demand)
    assert replay(s, inputs)[changed] != decisions[changed]


def test_the_package_imports_nothing_of_the_lab_but_errors() -> None:
    """Pure: no I/O, no asyncio, nothing of the lab (others integrate it)."""
    pkg = Path(lab.autoscale.__file__).parent
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("asyncio", "os", "time", "subprocess", "socket"), path
                if name.startswith("lab."):
                    assert name.startswith(("lab.autoscale", "lab.errors")), (path, name)
