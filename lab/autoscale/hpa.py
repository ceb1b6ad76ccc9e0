"""The Kubernetes Horizontal Pod Autoscaler's decision rule, as pure functions and one small
stateful class, so that every stored decision of a run can be recomputed from its inputs.

Source: the HPA concept page, "Algorithm details", "Scaling policies", "Stabilization
window", "Default behavior" (https://kubernetes.io/docs/concepts/workloads/autoscaling/
horizontal-pod-autoscale/), and the controller it describes, ``kubernetes/kubernetes``
``pkg/controller/podautoscaler/replica_calculator.go`` (``calcPlainMetricReplicas``,
``GetResourceReplicas``) and ``horizontal.go`` (``reconcileAutoscaler``,
``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``,
``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``).

One sync of the controller, as this module applies it (``Autoscaler.decide``):

1. **Recommendation** (``desired_replicas``): ``ratio = mean / target`` over the ready
   replicas that reported a value; no change while ``1 - tolerance <= ratio <= 1 +
   tolerance``; otherwise ``ceil(ready × ratio)``. With replicas missing a value or not
   ready, the mean is recomputed conservatively: on a scale-down a missing value counts as
   the target (``in_flight``, ``rps``: "100 % of the desired value") or as a full replica
   (``utilization``, ``cpu``: 100 % of the request, or the target when that is higher, as
   the controller does for resource metrics); on a scale-up missing and not-ready replicas
   count as 0. If the recomputed ratio is within the tolerance or reverses the direction,
   nothing changes; otherwise ``ceil(counted × ratio)``.
2. **Stabilization** (``stabilize``): the recommendation is kept between the lowest
   recommendation of the scale-up window and the highest of the scale-down window (the
   rolling maximum that stops flapping).
3. **Policies and bounds** (``scale_up_limit``, ``scale_down_limit``): each policy allows
   ``pods`` replicas or ``percent`` % of the replicas at the start of its period
   (the replicas now, less what was added and plus what was removed in the last
   ``period_s``); ``scale_up_select``/``scale_down_select`` ``"max"`` (the HPA's
   ``selectPolicy: Max``) takes the policy that allows the most change;
   then the count is clamped to ``[min_replicas, max_replicas]``.

Where the lab differs from the controller, and why:

- **One metric.** The HPA takes the largest count over several metrics; the lab scales on
  one.
- **Readiness is given.** The controller infers "not yet ready" for CPU from the pod's
  readiness history (``--horizontal-pod-autoscaler-cpu-initialization-period``, 5 min,
  ``initial-readiness-delay``, 30 s); the lab's replicas say whether their ready path
  answers (``ReplicaMetric.ready``), for every metric.
- **Scale to and from zero follows KEDA, not the HPA.** The HPA cannot leave 0 replicas
  without the ``HPAScaleToZero`` feature gate; KEDA (https://keda.sh/docs/latest/concepts/
  scaling-deployments/) and Knative put an activator in front: the HPA works between 1 and
  ``max_replicas``, and the 0 ↔ 1 step is taken outside it. With ``min_replicas = 0`` the
  lab wakes the target (0 → 1) at the first sync that sees a request waiting (``demand``),
  and scales it to zero once no replica reported activity (a value above 0, KEDA's
  ``activationThreshold`` of 0) and no request waited for ``scale_down_window_s``
  (KEDA's ``cooldownPeriod``, 300 s by default like the HPA's window). These two steps are
  not rate-limited by the policies and are not scale events of the HPA, as in KEDA. A
  ``cpu`` metric never reads exactly 0, so it never scales to zero.
- **Rounding.** ``ceil`` is taken after rounding to 1e-9, so that float artefacts
  (``10 × 1.1 = 11.000000000000002``) do not add a replica the arithmetic does not ask for.
  The controller rounds its metrics to milli-units instead.
- **Scale events** are kept for the longest policy period of either direction, and each
  policy counts those inside its own period (the controller recycles old events lazily).

A replay needs the ``HpaSettings`` and, for every sync in order, its ``DecisionInput``:
the time, the current replica count, each replica's value and readiness, and ``demand``.
``replay`` recomputes the decisions from them; nothing else (no clock, no randomness) enters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

METRICS = ("utilization", "cpu", "in_flight", "rps")
"""The metrics a replica reports: busy fraction 0..1, CPU percent of one core (psutil),
requests in flight, requests per second."""

FULL_REPLICA = {"utilization": 1.0, "cpu": 100.0}
"""What 100 % of a replica's "request" reads in the resource-like metrics: the value a
missing replica counts as on a scale-down (``GetResourceReplicas``)."""

PolicyType = Literal["percent", "pods"]
SelectPolicy = Literal["max", "min", "disabled"]

_ROUND = 9  # decimal places kept before ceil/compare: see "Rounding" above


def _ceil(x: float) -> int:
    return math.ceil(round(x, _ROUND))


@dataclass(frozen=True)
class ScalingPolicy:
    """One rate limit of one direction (``behavior.scaleUp/scaleDown.policies[]``).

    Raises:
        ValueError: an unknown type, a value that is not above 0 (``pods``: a whole number),
            or a period that is not above 0.
    """

    type: PolicyType
    """``percent``: ``value`` % of the replicas at the start of the period;
    ``pods``: ``value`` replicas."""
    value: float
    period_s: float
    """How far back the policy looks (``periodSeconds``), seconds."""

    def __post_init__(self) -> None:
        if self.type not in ("percent", "pods"):
            raise ValueError(f"policy type: must be 'percent' or 'pods', got {self.type!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"policy value: must be above 0, got {self.value}")
        if self.type == "pods" and self.value != int(self.value):
            raise ValueError(f"policy value: a 'pods' policy takes a whole number, got {self.value}")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"policy period: must be above 0 s, got {self.period_s}")

    def __str__(self) -> str:
        unit = "%" if self.type == "percent" else ""
        return f"{self.type} {self.value:g}{unit} per {self.period_s:g} s"


DEFAULT_SCALE_UP_POLICIES = (ScalingPolicy("percent", 100, 15.0), ScalingPolicy("pods", 4, 15.0))
"""The HPA's default ``behavior.scaleUp.policies``: 100 % or 4 pods per 15 s."""
DEFAULT_SCALE_DOWN_POLICIES = (ScalingPolicy("percent", 100, 15.0),)
"""The HPA's default ``behavior.scaleDown.policies``: 100 % per 15 s."""


@dataclass(frozen=True)
class HpaSettings:
    """An autoscaler's configuration; the defaults are the HPA's own.

    Raises:
        ValueError: one line naming the field and what is allowed (an unknown metric or
            select policy, ``target <= 0``, ``min_replicas < 0``, ``max_replicas < 1``,
            ``min_replicas > max_replicas``, a negative tolerance or window, a period
            that is not above 0, no policy for a direction that is not disabled).
    """

    metric: str
    """One of ``METRICS``."""
    target: float
    """The desired mean value per replica, in the metric's unit (> 0)."""
    min_replicas: int
    """>= 0; 0 allows scale to zero (see the module's note on KEDA)."""
    max_replicas: int
    """>= max(1, min_replicas): never exceeded."""
    sync_period_s: float = 15.0
    """How often the caller runs ``decide`` (``--horizontal-pod-autoscaler-sync-period``)."""
    tolerance: float = 0.1
    """No change while the ratio is within 1 ± tolerance (``--horizontal-pod-autoscaler-tolerance``)."""
    scale_down_window_s: float = 300.0
    """``behavior.scaleDown.stabilizationWindowSeconds``: the highest recommendation in it wins."""
    scale_up_window_s: float = 0.0
    """``behavior.scaleUp.stabilizationWindowSeconds``: the lowest recommendation in it wins."""
    scale_up_policies: tuple[ScalingPolicy, ...] = DEFAULT_SCALE_UP_POLICIES
    scale_down_policies: tuple[ScalingPolicy, ...] = DEFAULT_SCALE_DOWN_POLICIES
    scale_up_select: SelectPolicy = "max"
    """``selectPolicy``: ``max`` the policy allowing the most change, ``min`` the least,
    ``disabled`` no scaling in this direction."""
    scale_down_select: SelectPolicy = "max"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if not (math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"target: must be above 0, got {self.target}")
        if self.min_replicas < 0:
            raise ValueError(f"min_replicas: must be 0 or more, got {self.min_replicas}")
        if self.max_replicas < 1:
            raise ValueError(f"max_replicas: must be 1 or more, got {self.max_replicas}")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas: must be at most max_replicas ({self.max_replicas}), "
                             f"got {self.min_replicas}")
        if not (math.isfinite(self.sync_period_s) and self.sync_period_s > 0):
            raise ValueError(f"sync_period: must be above 0 s, got {self.sync_period_s}")
        for name in ("tolerance", "scale_down_window_s", "scale_up_window_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name.removesuffix('_s')}: must be 0 or more, got {value}")
        for direction in ("up", "down"):
            select = getattr(self, f"scale_{direction}_select")
            if select not in ("max", "min", "disabled"):
                raise ValueError(f"scale_{direction}_select: must be 'max', 'min' or 'disabled', "
                                 f"got {select!r}")
            if select != "disabled" and not getattr(self, f"scale_{direction}_policies"):
                raise ValueError(f"scale_{direction}_policies: needs at least one policy")

    @property
    def longest_period_s(self) -> float:
        """The longest policy period of either direction, seconds (how long scale events matter)."""
        return max((p.period_s for p in self.scale_up_policies + self.scale_down_policies), default=0.0)


LAB_SYNC_PERIOD_S = 1.0
"""The lab's default sync period: the HPA's 15 s would leave a one-minute run four decisions."""
LAB_SCALE_DOWN_WINDOW_S = 30.0
"""The lab's default scale-down window: the HPA's 300 s is longer than most lab runs."""
LAB_SCALE_UP_POLICIES = (ScalingPolicy("percent", 100, LAB_SYNC_PERIOD_S),
                         ScalingPolicy("pods", 4, LAB_SYNC_PERIOD_S))
"""The HPA's default scale-up policies with their 15 s period (one default sync) shortened to
one lab sync, so they still mean "per sync"."""
LAB_SCALE_DOWN_POLICIES = (ScalingPolicy("percent", 100, LAB_SYNC_PERIOD_S),)


def lab_settings(metric: str, target: float, min_replicas: int, max_replicas: int,
                 **overrides: object) -> HpaSettings:
    """``HpaSettings`` with the lab's shortened time constants (sync 1 s, scale-down window
    30 s, policy periods 1 s); ``overrides`` set any other field.

    Raises:
        ValueError: as ``HpaSettings``.
    """
    fields: dict[str, object] = dict(sync_period_s=LAB_SYNC_PERIOD_S,
                                     scale_down_window_s=LAB_SCALE_DOWN_WINDOW_S,
                                     scale_up_policies=LAB_SCALE_UP_POLICIES,
                                     scale_down_policies=LAB_SCALE_DOWN_POLICIES)
    fields.update(overrides)
    return HpaSettings(metric, target, min_replicas, max_replicas, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReplicaMetric:
    """What one replica reported at a sync.

    Raises:
        ValueError: a value that is negative or not finite (report None for no reading).
    """

    replica: int
    """The replica's index."""
    value: float | None
    """Its metric value, in the metric's unit; None when no value could be read (missing)."""
    ready: bool
    """Its ready path answers. A replica still starting is passed with ``ready=False``."""

    def __post_init__(self) -> None:
        if self.value is not None and not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"replica {self.replica}: metric value must be 0 or more, got {self.value}")


@dataclass(frozen=True)
class Recommendation:
    """The replica calculator's answer for one sync (step 1 of the rule)."""

    replicas: int
    """The recommended count; the current count when nothing should change."""
    metric_value: float | None
    """The mean the ratio was taken from (after the conservative recompute when one was
    made); None when no ready replica reported a value."""
    ratio: float | None
    """``metric_value / target``; None with no value."""
    note: str
    """Why, in a few words: ``ratio 1.45 > 1.1``, ``ratio 1.05 within tolerance 0.1``..."""
    usable: bool = True
    """False when no ready replica reported a value: the controller then skips the sync
    (no recommendation is recorded)."""


@dataclass(frozen=True)
class DecisionInput:
    """Everything one sync reads: what a replay needs, per decision, in order."""

    t_s: float
    """Seconds since the run started; never decreasing from one sync to the next."""
    current: int
    """The replica count the target is set to now (the scale's ``spec.replicas``)."""
    metrics: tuple[ReplicaMetric, ...] = ()
    """One entry per replica that exists (ready or not)."""
    demand: bool = False
    """Requests are waiting at the balancer (the activator's view): at 0 replicas this wakes
    the target; at 1 or more it counts as activity, like a replica value above 0."""


@dataclass(frozen=True)
class Decision:
    """One sync's decision, as stored and drawn."""

    t_s: float
    current: int
    metric_value: float | None
    """The mean the rule used (see ``Recommendation.metric_value``)."""
    ratio: float | None
    recommended: int
    """``ceil(counted × ratio)`` after the missing/not-ready rules and the tolerance."""
    desired: int
    """After the stabilization windows, the policies, and the clamp to the bounds: the
    count the target should be set to."""
    reason: str
    """One line a user reads: ``ratio 1.45 > 1.1: 2 → 3``."""
    stabilized: int | None = None
    """The recommendation after the stabilization windows, before policies and bounds; None
    when the rule did not get that far (no value, a bound, a step to or from zero)."""


def within_tolerance(ratio: float, tolerance: float) -> bool:
    """``1 - tolerance <= ratio <= 1 + tolerance`` (``Tolerances.isWithin``)."""
    r = round(ratio, _ROUND)
    return round(1.0 - tolerance, _ROUND) <= r <= round(1.0 + tolerance, _ROUND)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _direction(ratio: float, tolerance: float) -> str:
    return f"> {1 + tolerance:g}" if ratio > 1 else f"< {1 - tolerance:g}"


def missing_on_scale_down(metric: str, target: float) -> float:
    """The value a replica with no reading counts as on a scale-down.

    ``in_flight``, ``rps``: the target ("100 % of the desired value";
    ``calcPlainMetricReplicas``). ``utilization``, ``cpu``: a full replica, or the target
    when it is higher (``GetResourceReplicas``: ``max(100, targetUtilization)`` % of the
    request).
    """
    full = FULL_REPLICA.get(metric)
    return target if full is None else max(full, target)


def desired_replicas(current: int, metrics: Sequence[ReplicaMetric], target: float,
                     tolerance: float = 0.1, metric: str = "in_flight") -> Recommendation:
    """The replica calculator: ``ceil(replicas × mean / target)`` with the HPA's rules for
    the tolerance, missing values and replicas not yet ready (step 1 of the module's rule).

    Args:
        current: the replica count the target is set to now.
        metrics: one entry per existing replica.
        target: the desired mean per replica (> 0).
        tolerance: no change while the ratio is within 1 ± tolerance.
        metric: one of ``METRICS``; decides what a missing value counts as on a scale-down.

    Returns:
        The recommendation; ``usable`` False (and ``replicas == current``) when no ready
        replica reported a value.
    """
    ready = [m.value for m in metrics if m.ready and m.value is not None]
    missing = [m for m in metrics if m.ready and m.value is None]
    unready = [m for m in metrics if not m.ready]
    if not ready:
        return Recommendation(current, None, None, "no value from any ready replica", usable=False)
    mean = _mean(ready)
    ratio = mean / target
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if within_tolerance(ratio, tolerance):
            return Recommendation(current, mean, ratio, f"ratio {ratio:.2f} within tolerance {tolerance:g}")
        return Recommendation(_ceil(ratio * len(ready)), mean, ratio,
                              f"ratio {ratio:.2f} {_direction(ratio, tolerance)}")
    counted = list(ready)
    assumed = []
    if missing:
        if ratio < 1.0:
            counted += [missing_on_scale_down(metric, target)] * len(missing)
            assumed.append(f"{len(missing)} without a value counted as {counted[-1]:g}")
        elif ratio > 1.0:
            counted += [0.0] * len(missing)
            assumed.append(f"{len(missing)} without a value counted as 0")
    if scale_up_with_unready:
        counted += [0.0] * len(unready)
        assumed.append(f"{len(unready)} not ready counted as 0")
    new_mean = _mean(counted)
    new_ratio = new_mean / target
    how = f"ratio {new_ratio:.2f} ({', '.join(assumed)})" if assumed else f"ratio {new_ratio:.2f}"
    if within_tolerance(new_ratio, tolerance):
        return Recommendation(current, new_mean, new_ratio, f"{how} within tolerance {tolerance:g}")
    if (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Recommendation(current, new_mean, new_ratio, f"{how} reverses the direction")
    replicas = _ceil(new_ratio * len(counted))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Recommendation(current, new_mean, new_ratio, f"{how} reverses the direction")
    return Recommendation(replicas, new_mean, new_ratio, f"{how} {_direction(new_ratio, tolerance)}")


def stabilize(current: int, recommended: int, history: Iterable[tuple[float, int]], t_s: float,
              up_window_s: float, down_window_s: float) -> int:
    """The recommendation kept between the lowest recommendation of the scale-up window and
    the highest of the scale-down window (``stabilizeRecommendationWithBehaviors``).

    Args:
        history: earlier recommendations as ``(t_s, replicas)``; one counts in a window of
            length w when its time is after ``t_s - w`` (so a window of 0 holds nothing).
    """
    up = down = recommended
    for at_s, replicas in history:
        if at_s > t_s - up_window_s:
            up = min(up, replicas)
        if at_s > t_s - down_window_s:
            down = max(down, replicas)
    return min(max(current, up), down)


def _changed_in(events: Iterable[tuple[float, int]], t_s: float, period_s: float) -> int:
    return sum(change for at_s, change in events if at_s > t_s - period_s)


def _period_start(current: int, policy: ScalingPolicy, up_events: Sequence[tuple[float, int]],
                  down_events: Sequence[tuple[float, int]], t_s: float) -> int:
    return (current - _changed_in(up_events, t_s, policy.period_s)
            + _changed_in(down_events, t_s, policy.period_s))


def scale_up_limit(current: int, up_events: Sequence[tuple[float, int]],
                   down_events: Sequence[tuple[float, int]], policies: Sequence[ScalingPolicy],
                   select: SelectPolicy, t_s: float) -> tuple[int, ScalingPolicy | None]:
    """The most replicas the scale-up policies allow now (``calculateScaleUpLimitWithScalingRules``).

    Each policy starts from the count at the start of its period (``current`` less what was
    added, plus what was removed, in the last ``period_s``): ``pods`` adds ``value``;
    ``percent`` gives ``ceil(start × (1 + value/100))``.

    Args:
        up_events, down_events: past scale events as ``(t_s, replicas added or removed)``.

    Returns:
        The limit, and the policy that set it (None when ``select`` is ``disabled``).
    """
    if select == "disabled":
        return current, None
    best: tuple[int, ScalingPolicy] | None = None
    for policy in policies:
        start = _period_start(current, policy, up_events, down_events, t_s)
        proposed = (start + int(policy.value) if policy.type == "pods"
                    else _ceil(start * (1 + policy.value / 100)))
        if best is None or (proposed > best[0] if select == "max" else proposed < best[0]):
            best = (proposed, policy)
    assert best is not None  # HpaSettings refuses an enabled direction without policies
    return best


def scale_down_limit(current: int, up_events: Sequence[tuple[float, int]],
                     down_events: Sequence[tuple[float, int]], policies: Sequence[ScalingPolicy],
                     select: SelectPolicy, t_s: float) -> tuple[int, ScalingPolicy | None]:
    """The fewest replicas the scale-down policies allow now (``calculateScaleDownLimitWithBehaviors``).

    ``pods`` removes ``value`` from the count at the start of the period; ``percent`` keeps
    ``int(start × (1 - value/100))`` (truncated, so 10 % of 72 removes 8).

    Returns:
        The limit, and the policy that set it (None when ``select`` is ``disabled``).
    """
    if select == "disabled":
        return current, None
    best: tuple[int, ScalingPolicy] | None = None
    for policy in policies:
        start = _period_start(current, policy, up_events, down_events, t_s)
        proposed = (start - int(policy.value) if policy.type == "pods"
                    else int(round(start * (1 - policy.value / 100), _ROUND)))
        if best is None or (proposed < best[0] if select == "max" else proposed > best[0]):
            best = (proposed, policy)
    assert best is not None
    return best


class Autoscaler:
    """The HPA controller for one target: the recommendations and scale events its windows
    and policies read, and ``decide`` for each sync.

    Fully determined by its settings and the inputs of ``decide`` in order (see ``replay``):
    no clock, no randomness.
    """

    def __init__(self, settings: HpaSettings) -> None:
        self.settings = settings
        self._recommendations: list[tuple[float, int]] = []
        """Recommendations of the replica calculator, ``(t_s, replicas)``, before stabilization."""
        self._up_events: list[tuple[float, int]] = []
        """Scale-ups decided, ``(t_s, replicas added)``."""
        self._down_events: list[tuple[float, int]] = []
        """Scale-downs decided, ``(t_s, replicas removed)``."""
        self._last_t_s: float | None = None
        self._last_active_s: float | None = None
        """When a replica last reported a value above 0 or a request last waited."""

    def decide(self, t_s: float, current: int, metrics: Sequence[ReplicaMetric],
               demand: bool = False) -> Decision:
        """One sync: the replica count the target should have now.

        Args:
            t_s: seconds since the run started; not below the previous call's.
            current: the replica count the target is set to now (>= 0).
            metrics: one entry per replica that exists, ready or not.
            demand: requests are waiting (see ``DecisionInput.demand``).

        Raises:
            ValueError: ``t_s`` went back in time, or ``current`` is negative.
        """
        s = self.settings
        if self._last_t_s is not None and t_s < self._last_t_s:
            raise ValueError(f"t_s: must not go back in time ({t_s} after {self._last_t_s})")
        if current < 0:
            raise ValueError(f"current: must be 0 or more, got {current}")
        if self._last_t_s is None:
            # recordInitialRecommendation: the count found at the first sync is a
            # recommendation, so the scale-down window does not shrink a target at once.
            self._recommendations.append((t_s, current))
            self._last_active_s = t_s
        self._last_t_s = t_s
        self._prune(t_s)
        if demand or any(m.value for m in metrics):
            self._last_active_s = t_s
        assert self._last_active_s is not None

        def decision(desired: int, reason: str, *, value: float | None = None,
                     ratio: float | None = None, recommended: int | None = None,
                     stabilized: int | None = None) -> Decision:
            move = f"{current} → {desired}" if desired != current else f"holds {current}"
            return Decision(t_s, current, value, ratio, desired if recommended is None else recommended,
                            desired, f"{reason}: {move}", stabilized)

        if current == 0:
            if s.min_replicas > 0:
                return decision(0, f"scaling disabled: 0 replicas with min_replicas {s.min_replicas}")
            if demand:
                return decision(1, "scale from zero: a request is waiting")
            return decision(0, "at zero, no request waiting")
        idle_s = t_s - self._last_active_s
        if s.min_replicas == 0 and idle_s > 0 and idle_s >= s.scale_down_window_s:
            return decision(0, f"no activity for {idle_s:g} s: scale to zero")

        hpa_min = max(s.min_replicas, 1)
        if current > s.max_replicas:
            return self._scaled(decision(s.max_replicas, "above max_replicas: clamped to max "
                                         f"{s.max_replicas}"))
        if current < hpa_min:
            return self._scaled(decision(hpa_min, f"below min_replicas: clamped to min {hpa_min}"))

        rec = desired_replicas(current, metrics, s.target, s.tolerance, s.metric)
        if not rec.usable:
            return decision(current, rec.note)
        stabilized = stabilize(current, rec.replicas, self._recommendations, t_s,
                               s.scale_up_window_s, s.scale_down_window_s)
        self._recommendations.append((t_s, rec.replicas))
        steps = []
        if stabilized != rec.replicas:
            if rec.replicas < stabilized:
                steps.append(f"scale-down window holds {stabilized} "
                             f"(highest in {s.scale_down_window_s:g} s)")
            else:
                steps.append(f"scale-up window holds {stabilized} (lowest in {s.scale_up_window_s:g} s)")
        desired, limited = self._limit(t_s, current, stabilized, hpa_min)
        if limited:
            steps.append(limited)
        why = rec.note
        if steps:
            why += f", wants {rec.replicas}; " + "; ".join(steps)
        return self._scaled(decision(desired, why, value=rec.metric_value, ratio=rec.ratio,
                                     recommended=rec.replicas, stabilized=stabilized))

    def _limit(self, t_s: float, current: int, wanted: int, hpa_min: int) -> tuple[int, str]:
        """The policies and the bounds (``convertDesiredReplicasWithBehaviorRate``)."""
        s = self.settings
        if wanted > current:
            limit, policy = scale_up_limit(current, self._up_events, self._down_events,
                                           s.scale_up_policies, s.scale_up_select, t_s)
            limit = max(limit, current)
            if s.max_replicas > limit:
                allowed = limit
                why = f"limited by policy {policy}" if policy else "scale-up disabled"
            else:
                allowed, why = s.max_replicas, f"clamped to max {s.max_replicas}"
            if wanted > allowed:
                return allowed, why
        elif wanted < current:
            limit, policy = scale_down_limit(current, self._up_events, self._down_events,
                                             s.scale_down_policies, s.scale_down_select, t_s)
            limit = min(limit, current)
            if hpa_min < limit:
                allowed = limit
                why = f"limited by policy {policy}" if policy else "scale-down disabled"
            else:
                allowed, why = hpa_min, f"clamped to min {hpa_min}"
            if wanted < allowed:
                return allowed, why
        return wanted, ""

    def _scaled(self, d: Decision) -> Decision:
        """Records the scale event of a decision that changes the count (``storeScaleEvent``)."""
        if d.desired > d.current:
            self._up_events.append((d.t_s, d.desired - d.current))
        elif d.desired < d.current:
            self._down_events.append((d.t_s, d.current - d.desired))
        return d

    def _prune(self, t_s: float) -> None:
        """Forgets what no window or period can reach again (times never go back)."""
        window_s = max(self.settings.scale_up_window_s, self.settings.scale_down_window_s)
        self._recommendations[:] = [r for r in self._recommendations if r[0] > t_s - window_s]
        period_s = self.settings.longest_period_s
        self._up_events[:] = [e for e in self._up_events if e[0] > t_s - period_s]
        self._down_events[:] = [e for e in self._down_events if e[0] > t_s - period_s]

    def decide_input(self, inp: DecisionInput) -> Decision:
        """``decide`` with one stored ``DecisionInput``."""
        return self.decide(inp.t_s, inp.current, inp.metrics, inp.demand)


def replay(settings: HpaSettings, inputs: Iterable[DecisionInput]) -> list[Decision]:
    """Recomputes a run's decisions from its settings and its stored inputs, in order.

    A fresh ``Autoscaler`` sees the same inputs in the same order, so an unchanged rule
    gives back exactly the stored decisions.
    """
    scaler = Autoscaler(settings)
    return [scaler.decide_input(inp) for inp in inputs]
