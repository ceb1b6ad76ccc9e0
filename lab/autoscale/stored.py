"""An ``[autoscale]`` table and a decision's inputs, as stored with a run, back and forth.

The run's config keeps the ``[autoscale]`` table (durations in seconds, as
``AutoscaleSpec.model_dump`` gives them) and each decision row keeps its inputs as JSON
(``inputs_json``); ``settings_of`` and ``input_of`` turn them back into what ``replay``
takes, so a stored run's decisions can be recomputed with the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab.autoscale.hpa import DecisionInput, HpaSettings, ReplicaMetric, ScalingPolicy


def _policies(raw: Any) -> tuple[ScalingPolicy, ...]:
    return tuple(ScalingPolicy(str(p["type"]), float(p["value"]), float(p["period"]))  # type: ignore[arg-type]
                 for p in raw or [])


def settings_of(table: Mapping[str, Any]) -> HpaSettings:
    """``HpaSettings`` of an ``[autoscale]`` table (field names of the experiment file,
    durations in seconds).

    Raises:
        ValueError: as ``HpaSettings``; KeyError: a field is missing.
    """
    return HpaSettings(
        metric=str(table["metric"]), target=float(table["target"]),
        min_replicas=int(table["min_replicas"]), max_replicas=int(table["max_replicas"]),
        sync_period_s=float(table["sync_period"]), tolerance=float(table["tolerance"]),
        scale_down_window_s=float(table["scale_down_window"]),
        scale_up_window_s=float(table.get("scale_up_window", 0.0)),
        scale_up_policies=_policies(table.get("scale_up_policies")),
        scale_down_policies=_policies(table.get("scale_down_policies")),
    )


def inputs_json(inp: DecisionInput) -> dict[str, Any]:
    """What a decision was computed from, as JSON: ``{"current", "demand", "metrics":
    [{"replica", "value", "ready"}, ...]}`` (its time is the row's ``t_s``)."""
    return {"current": inp.current, "demand": inp.demand,
            "metrics": [{"replica": m.replica, "value": m.value, "ready": m.ready} for m in inp.metrics]}


def input_of(t_s: float, stored: Mapping[str, Any]) -> DecisionInput:
    """The ``DecisionInput`` of a stored decision (``inputs_json`` and its ``t_s``)."""
    metrics = tuple(ReplicaMetric(int(m["replica"]), None if m["value"] is None else float(m["value"]),
                                  bool(m["ready"])) for m in stored.get("metrics", []))
    return DecisionInput(t_s, int(stored["current"]), metrics, bool(stored.get("demand", False)))
