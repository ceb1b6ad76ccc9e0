"""An HPA-style autoscaler: the Kubernetes Horizontal Pod Autoscaler's decision rule as pure
functions (``lab.autoscale.hpa``), with no I/O, no clock and nothing of the rest of the lab,
so a stored run's decisions can be recomputed from its inputs (``replay``)."""

from lab.autoscale.hpa import (
    DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_UP_POLICIES,
    METRICS,
    Autoscaler,
    Decision,
    DecisionInput,
    HpaSettings,
    Recommendation,
    ReplicaMetric,
    ScalingPolicy,
    desired_replicas,
    missing_on_scale_down,
    replay,
    scale_down_limit,
    scale_up_limit,
    stabilize,
    within_tolerance,
)

__all__ = [
    "DEFAULT_SCALE_DOWN_POLICIES",
    "DEFAULT_SCALE_UP_POLICIES",
    "METRICS",
    "Autoscaler",
    "Decision",
    "DecisionInput",
    "HpaSettings",
    "Recommendation",
    "ReplicaMetric",
    "ScalingPolicy",
    "desired_replicas",
    "missing_on_scale_down",
    "replay",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize",
    "within_tolerance",
]
