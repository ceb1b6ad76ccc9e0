"""The scale-out parts of an experiment file: ``[balancer]``, ``[autoscale]`` and ``[[faults]]``.

``[target] replicas = N`` starts N copies of the target app, one uvicorn process each on
its own loopback port; ``[balancer]`` puts a lab-started nginx in front of them;
``[autoscale]`` lets an HPA-style autoscaler change N during the run; ``[[faults]]``
schedules failures (a replica killed at a given second). The field names are a contract.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lab.spec.durations import NonNegativeDuration, PositiveDuration
from lab.spec.wording import FieldError, show_value

BALANCER_METHODS = ("round_robin", "least_conn", "random_two", "hash", "ip_hash")
AUTOSCALE_METRICS = ("utilization", "cpu", "in_flight", "rps")
MAX_REPLICAS = 32
"""More loopback replicas than this only measure the machine's scheduler."""


class BalancerSpec(BaseModel):
    """The ``[balancer]`` table: nginx in front of the replicas.

    ``method``: ``round_robin`` (nginx's default), ``least_conn``, ``random_two`` (nginx
    ``random two least_conn``), ``hash`` (``hash <hash_key> consistent``: consistent
    hashing on a request value, e.g. ``$http_x_user``) or ``ip_hash``. ``keepalive``: idle
    upstream connections nginx keeps per worker. Methods as documented at
    https://nginx.org/en/docs/http/ngx_http_upstream_module.html
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["round_robin", "least_conn", "random_two", "hash", "ip_hash"] = "round_robin"
    hash_key: str | None = None
    keepalive: int = Field(64, ge=1, le=10_000, strict=True)

    @field_validator("hash_key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if (not value.startswith("$") or len(value) > 200 or not value.isprintable()
                or any(c.isspace() or c in ";{}'\"\\" for c in value)):
            raise ValueError("must be an nginx variable such as \"$http_x_user\" or "
                             f"\"$cookie_session\" (got {show_value(value)})")
        return value

    @model_validator(mode="after")
    def _key_with_hash(self) -> BalancerSpec:
        if self.method == "hash" and not self.hash_key:
            raise FieldError("method = \"hash\" needs a hash_key, e.g. hash_key = \"$http_x_user\"",
                             ("hash_key",))
        if self.hash_key and self.method != "hash":
            raise FieldError(f"applies only to method = \"hash\" (method is {self.method!r})",
                             ("hash_key",))
        return self


class PolicySpec(BaseModel):
    """One scaling policy: at most ``value`` pods, or ``value`` percent of the current
    replicas, added (or removed) per ``period``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["percent", "pods"]
    value: float = Field(gt=0, le=10_000, allow_inf_nan=False)
    period: PositiveDuration = 1.0

    @model_validator(mode="after")
    def _whole_pods(self) -> PolicySpec:
        if self.type == "pods" and self.value != int(self.value):
            raise FieldError(f"a \"pods\" policy adds or removes whole replicas; got {self.value:g}",
                             ("value",))
        return self


class AutoscaleSpec(BaseModel):
    """The ``[autoscale]`` table: an autoscaler following the Kubernetes Horizontal Pod
    Autoscaler's algorithm (https://kubernetes.io/docs/concepts/workloads/autoscaling/
    horizontal-pod-autoscale/#algorithm-details), with time constants shortened so a
    one-minute run can show it (``sync_period`` 1 s instead of 15 s, ``scale_down_window``
    30 s instead of 300 s; the run's config records the values used).

    ``metric``: ``utilization`` (the busy fraction each replica reports in its stats'
    gauges, the stand-in for CPU utilization against a pod's CPU request), ``cpu``
    (psutil, percent of one core), ``in_flight`` (each replica's in-flight gauge) or
    ``rps`` (requests per second each replica served, from the balancer's log).
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["utilization", "cpu", "in_flight", "rps"] = "utilization"
    target: float = Field(gt=0, allow_inf_nan=False)
    min_replicas: int = Field(1, ge=0, le=MAX_REPLICAS, strict=True)
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS, strict=True)
    sync_period: PositiveDuration = 1.0
    tolerance: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    scale_down_window: NonNegativeDuration = 30.0
    scale_up_window: NonNegativeDuration = 0.0
    scale_up_policies: list[PolicySpec] = Field(default_factory=lambda: [
        PolicySpec(type="percent", value=100, period=1.0), PolicySpec(type="pods", value=4, period=1.0)])
    scale_down_policies: list[PolicySpec] = Field(default_factory=lambda: [
        PolicySpec(type="percent", value=100, period=1.0)])
    drain_timeout: PositiveDuration = 5.0
    """How long a replica taken out of the balancer may finish its in-flight requests
    before it is stopped."""

    @field_validator("scale_up_policies", "scale_down_policies")
    @classmethod
    def _some_policy(cls, value: list[PolicySpec]) -> list[PolicySpec]:
        if not value:
            raise ValueError("give at least one policy, e.g. [{ type = \"percent\", value = 100, "
                             "period = \"1s\" }]")
        return value

    @model_validator(mode="after")
    def _range(self) -> AutoscaleSpec:
        if self.metric == "utilization" and self.target > 1:
            raise FieldError(f"utilization is a busy fraction 0..1 (each replica's busy slots); "
                             f"got {self.target:g}, which no replica can reach", ("target",))
        if self.min_replicas > self.max_replicas:
            raise FieldError(f"must be at most max_replicas ({self.max_replicas}); got "
                             f"{self.min_replicas}", ("min_replicas",))
        return self


class FaultSpec(BaseModel):
    """One ``[[faults]]`` entry: something the lab breaks at a given moment of the run."""

    model_config = ConfigDict(extra="forbid")

    at: NonNegativeDuration
    """Seconds since the load began."""
    action: Literal["kill_replica"]
    """``kill_replica``: SIGKILL the replica's whole process tree (nothing drains)."""
    replica: int = Field(0, ge=0, le=10_000, strict=True)
    """Which replica (its index, as shown per replica in the results; replacements and
    replicas an autoscaler adds take the next numbers)."""
