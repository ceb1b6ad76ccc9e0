"""The experiment model: what an experiment file may hold, checked field by field.

An experiment file has four parts: ``[experiment]`` (title, question, description),
``[target]`` (the system under test), ``[load]`` (load model and the request mix in
``[[load.requests]]``) and optional ``[[variants]]`` that override target or load fields
(plus ``[services]``, ``[sweep]`` and ``[thresholds]``). Every resolved variant is
validated with the file, so a mistake is reported before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from lab.spec.durations import MAX_DURATION_S, NonNegativeDuration, PositiveDuration, seconds_text
from lab.spec.scaling import MAX_REPLICAS, AutoscaleSpec, BalancerSpec, FaultSpec
from lab.spec.wording import FieldError, describe_error, show_value


def _string_map(value: object) -> object:
    # TOML users write `CATALOG_ITEMS = 5000`; env vars and headers are strings anyway.
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[key] = str(item)
        else:
            out[key] = item
    return out


StringMap = Annotated[dict[str, str], BeforeValidator(_string_map)]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A number that is neither inf nor nan (TOML writes both; a rate of inf is no rate)."""




_APP_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_VARIANT_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
VU_PLACEHOLDER = "vu"
"""``{vu}``: the built-in placeholder for the VU's number (closed model), 1..VUs across every
generator worker, as k6's ``__VU``; usable in a request's path, header values and body."""


def _app_ref(value: str) -> str:
    if not _APP_RE.match(value):
        raise ValueError(f"must look like 'module.path:attribute' (got {show_value(value)})")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/' (got {show_value(value)})")
    return value


AppRef = Annotated[str, AfterValidator(_app_ref)]
"""``module.path:attribute`` of an ASGI app."""
UrlPath = Annotated[str, AfterValidator(_url_path)]
"""A request path on the target, starting with ``/``."""


class ExperimentInfo(BaseModel):
    """The ``[experiment]`` table: what the experiment asks, for the people reading it."""

    model_config = ConfigDict(extra="forbid")

    title: str
    question: str = ""
    description: str = ""
    look_for: str = ""
    """What to look for in the results: shown by ``lab run`` and the TUI."""
    slo_p99_ms: float | None = Field(None, gt=0, allow_inf_nan=False)
    """A latency objective the runs are judged by, per second: each run then reports the
    seconds its p99 was above it and the longest stretch of them (``lab.analysis.slo``)."""
    measured: str = ""
    """The effect measured on the maintainers' machine, shown in the experiment catalog
    (README.md, docs/experiments.md; made by ``python -m lab.catalog_doc``)."""
    variants_note: str = ""
    """A short note shown after the variants' names in the experiment catalog, e.g. what
    a variant needs (``a lab-started redis-server``)."""

    @field_validator("title")
    @classmethod
    def _title_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class TargetSpec(BaseModel):
    """The ``[target]`` table: the system under test.

    Either ``app`` (an ASGI app the lab starts with uvicorn on 127.0.0.1 and a free port)
    or ``url`` (an external target the lab does not start), never both.
    """

    model_config = ConfigDict(extra="forbid")

    app: AppRef | None = None
    """``module.path:attribute`` of an ASGI app, imported with ``app_dir`` as cwd."""
    url: str | None = None
    """Base URL of an external target (http or https), without a trailing slash."""
    workers: int = Field(1, ge=1, le=64, strict=True)
    """Server worker processes (app targets)."""
    host: str = "127.0.0.1"
    """The address a started target (or the balancer in front of its replicas) listens
    on: loopback unless another address of this machine is named on purpose (``lab run
    --target-host``), so generators on other machines of a cluster can reach it."""
    env: StringMap = Field(default_factory=dict)
    """Extra environment for the target process; numbers and booleans become strings."""
    ready_path: UrlPath = "/health"
    """GET this until it answers before the run starts."""
    ready_timeout: PositiveDuration = 30.0
    """Seconds to wait for ``ready_path``."""
    stats_path: str | None = "/stats"
    """Where the lab GETs cache hit/miss counters if the target answers; ``""`` disables."""
    app_dir: str | None = None
    """Working directory of the target process (default: the lab's current directory)."""
    cpus: int | None = Field(None, ge=1, le=1024, strict=True)
    """Pin the target's processes to this many CPU cores (the first ones; the load
    generator is then pinned to the rest, when any are left). None: no pinning."""
    replicas: int | None = Field(None, ge=0, le=MAX_REPLICAS, strict=True)
    """Copies of the app, one uvicorn process each on its own loopback port, behind the
    ``[balancer]`` (more than one needs one). With ``[autoscale]``: the count at the start
    (default: ``min_replicas``, at least 1). None: one process, no balancer unless asked."""

    @field_validator("host")
    @classmethod
    def _host_is_an_address(cls, value: str) -> str:
        import ipaddress

        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address of this machine, e.g. 10.0.0.5") from None
        if address.is_unspecified:
            raise ValueError(f"{value!r} listens everywhere; name the one address the generators "
                             f"reach, e.g. 10.0.0.5")
        return str(address)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http:// or https:// URL with a host (got {show_value(value)})")
        # Request paths start with "/", so a trailing slash here would double it.
        return value.rstrip("/")

    @field_validator("stats_path")
    @classmethod
    def _check_stats_path(cls, value: str | None) -> str | None:
        # TOML has no null, so an empty string is how a file switches stats off.
        if value is None or value == "":
            return None
        if not value.startswith("/"):
            raise ValueError(f"must start with '/' (got {show_value(value)}); use \"\" to disable")
        return value

    @model_validator(mode="after")
    def _app_xor_url(self) -> TargetSpec:
        if (self.app is None) == (self.url is None):
            given = "both" if self.app is not None else "neither"
            raise ValueError(
                "give exactly one of 'app' (module:attribute the lab starts) or 'url' "
                f"(an external target); got {given}"
            )
        if self.url is not None:
            # These only shape a process the lab starts; silently ignoring them would
            # let a user believe they changed an external target.
            for name in ("app_dir", "env", "workers", "cpus", "replicas"):
                if name in self.model_fields_set and getattr(self, name) not in (None, {}, 1):
                    raise FieldError(
                        "applies only to 'app' targets the lab starts, not to a 'url' target",
                        (name,),
                    )
        return self


class Stage(BaseModel):
    """One segment of a load profile: ramp linearly to ``target`` over ``duration``."""

    model_config = ConfigDict(extra="forbid")

    duration: PositiveDuration
    """Seconds."""
    target: float = Field(ge=0, allow_inf_nan=False)
    """VUs (closed model) or requests per second (open model) at the end of the stage."""


_PARAM_FIELDS: dict[str, tuple[str, ...]] = {
    "zipf": ("n", "s"),
    "uniform": ("low", "high"),
    "sequence": ("start", "stop"),
    "choice": ("values", "weights"),
}


class ParamSpec(BaseModel):
    """How one ``{placeholder}`` of a request path gets its values.

    - ``zipf``: integers 1..n, rank k drawn with probability ∝ 1/k^s (a few hot keys).
    - ``uniform``: integers low..high inclusive.
    - ``sequence``: start, start+1, ...; wraps back to start after ``stop`` if given.
    - ``choice``: one of ``values``, optionally with ``weights``.
    """

    model_config = ConfigDict(extra="forbid")

    distribution: Literal["zipf", "uniform", "sequence", "choice"]
    n: int | None = Field(None, ge=1, le=1_000_000, strict=True)
    """Zipf: distinct values 1..n (at most 1,000,000: the sampler keeps a table of n)."""
    s: float = Field(1.1, gt=0, allow_inf_nan=False)
    low: int | None = None
    high: int | None = None
    start: int = 1
    stop: int | None = None
    values: list[str | int | float] | None = None
    weights: list[FiniteFloat] | None = None

    @model_validator(mode="after")
    def _fields_fit_distribution(self) -> ParamSpec:
        uses = _PARAM_FIELDS[self.distribution]
        for name, field in type(self).model_fields.items():
            # A value equal to the default counts as not given, so that a full
            # model_dump() (as sent to generator workers) validates again.
            given = name in self.model_fields_set and getattr(self, name) != field.default
            if name != "distribution" and name not in uses and given:
                raise FieldError(
                    f"does not apply to distribution {self.distribution!r} "
                    f"(it uses: {', '.join(uses)})",
                    (name,),
                )
        if self.distribution == "zipf" and self.n is None:
            raise FieldError("distribution 'zipf' needs 'n' (number of distinct values)", ("n",))
        if self.distribution == "uniform":
            for name in ("low", "high"):
                if getattr(self, name) is None:
                    raise FieldError(f"distribution 'uniform' needs {name!r}", (name,))
            assert self.low is not None and self.high is not None
            if self.low > self.high:
                raise FieldError(f"must be >= low ({self.low}) (got {self.high})", ("high",))
        if self.distribution == "sequence" and self.stop is not None and self.stop < self.start:
            raise FieldError(f"must be >= start ({self.start}) (got {self.stop})", ("stop",))
        if self.distribution == "choice":
            if not self.values:
                raise FieldError(
                    "distribution 'choice' needs a non-empty 'values' list", ("values",)
                )
            if self.weights is not None:
                if len(self.weights) != len(self.values):
                    raise FieldError(
                        f"needs one weight per value ({len(self.values)}), got {len(self.weights)}",
                        ("weights",),
                    )
                if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                    raise FieldError("must all be >= 0 with a sum > 0", ("weights",))
        return self


class RequestSpec(BaseModel):
    """One entry of the request mix (``[[load.requests]]``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    """Label in reports; defaults to ``METHOD path`` where a consumer needs one."""
    method: str = "GET"
    path: UrlPath
    """Starts with '/'; ``{name}`` placeholders are filled from ``params``, ``{vu}`` with
    the VU's number."""
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    """Relative share of the mix."""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    headers: StringMap = Field(default_factory=dict)
    body: str | None = None
    expect_status: list[int] = Field(default_factory=list)
    """Statuses >= 400 listed here count as success."""

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        if value not in HTTP_METHODS:
            raise ValueError(f"unknown method {value!r}; allowed: {', '.join(HTTP_METHODS)}")
        return value

    @field_validator("expect_status")
    @classmethod
    def _check_statuses(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"HTTP statuses are 100..599 (got {status})")
        return value

    def vu_fields(self) -> list[tuple[str, ...]]:
        """Where this request uses ``{vu}``: ``("path",)``, ``("headers", NAME)``, ``("body",)``."""
        token = "{" + VU_PLACEHOLDER + "}"
        where: list[tuple[str, ...]] = [("path",)] if token in self.path else []
        where += [("headers", name) for name, value in self.headers.items() if token in value]
        if self.body is not None and token in self.body:
            where.append(("body",))
        return where

    @model_validator(mode="after")
    def _placeholders_have_params(self) -> RequestSpec:
        if VU_PLACEHOLDER in self.params:
            raise FieldError(f"'{VU_PLACEHOLDER}' is the built-in placeholder {{{VU_PLACEHOLDER}}} "
                             "(the VU's number); give the parameter another name",
                             ("params", VU_PLACEHOLDER))
        for name in _PLACEHOLDER_RE.findall(self.path):
            if not name.isidentifier():
                raise FieldError(f"placeholder {{{name}}} must be a name like {{id}}", ("path",))
            if name == VU_PLACEHOLDER:
                continue
            if name not in self.params:
                raise FieldError(
                    f"placeholder {{{name}}} has no entry in params; add "
                    f'params.{name} = {{ distribution = "...", ... }}',
                    ("path",),
                )
        return self

    @model_validator(mode="after")
    def _params_are_used(self) -> RequestSpec:
        used = set(_PLACEHOLDER_RE.findall(self.path))
        for name in self.params:
            if name not in used:
                raise FieldError(f"is not used: the path has no {{{name}}} placeholder", ("params", name))
        for name, value in self.headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise FieldError("header names and values cannot contain line breaks", ("headers", name))
        return self


MAX_STAGES = 1000
"""Stages a load profile may have: a typo or a generated file must not ask for 100,000
stages of a millisecond, each printed as a row of the stage table."""


class LoadSpec(BaseModel):
    """The ``[load]`` table: load model, profile and request mix.

    Closed model: ``vus`` virtual users each loop request → response → ``think_time``.
    Open model: requests arrive at ``rate`` per second whatever the responses.
    ``stages`` ramp the VUs or rate linearly; with stages the run lasts the sum of the
    stage durations and ``duration`` is not used.
    """

    model_config = ConfigDict(extra="forbid")

    model: Literal["closed", "open"] = "closed"
    vus: int | None = Field(None, ge=1, le=100_000, strict=True)
    """Virtual users (closed model)."""
    rate: float | None = Field(None, gt=0, le=1_000_000, allow_inf_nan=False)
    """Requests per second (open model)."""
    duration: PositiveDuration = 20.0
    """Seconds, when there are no stages."""
    warmup: NonNegativeDuration = 0.0
    """Seconds at the start excluded from summaries."""
    timeout: PositiveDuration = 5.0
    """Total deadline per request, seconds."""
    think_time: NonNegativeDuration = 0.0
    """Pause between a VU's requests, seconds (closed model)."""
    stages: list[Stage] = Field(default_factory=list)
    max_in_flight: int = Field(1000, ge=1, le=100_000, strict=True)
    """Open model: requests outstanding at once before new ones count as dropped."""
    connections: int | None = Field(None, ge=1, le=100_000, strict=True)
    """Open model: connections the generator may hold (default: ``max_in_flight``). A due
    request waits for a free connection; that wait counts in latency (measured from the
    intended send time) but not in service time, as with wrk2's fixed connections."""
    max_rps: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Closed model: cap on total requests per second."""
    workers: int | None = Field(None, ge=1, le=64, strict=True)
    """Load generator worker processes; None: one per core left after the target's
    processes, at least 1 (resolved by ``lab.plan``)."""
    cluster: str | None = None
    """Where the generator workers run: ``local:N`` (a Dask cluster of N worker processes
    the lab starts for each run) or a Dask scheduler's address (``tcp://HOST:8786``);
    None: local worker processes. ``--cluster`` and ``LAB_CLUSTER`` override it."""
    client: Literal["auto", "httpx", "fast"] = "auto"
    """How requests go out: ``httpx`` (full HTTP: TLS, HTTP/2, redirects, proxies),
    ``fast`` (lean HTTP/1.1 for plain-http loopback targets), or ``auto``: ``fast``
    where it can serve (and neither ``http2`` nor ``follow_redirects`` is asked for),
    else ``httpx`` (resolved by ``lab.plan``)."""
    keep_alive: bool = Field(True, strict=True)
    """Reuse connections between requests (HTTP keep-alive). ``false`` opens a new
    connection for every request and closes it after the response."""
    http2: bool = Field(False, strict=True)
    """Send every request as HTTP/2 (httpx engine only): over ``http://`` with prior
    knowledge (h2c), over ``https://`` negotiated by ALPN; a server that cannot speak
    HTTP/2 fails the requests rather than getting HTTP/1.1."""
    follow_redirects: bool = Field(False, strict=True)
    """Follow 3xx redirects (httpx engine only; at most 20): the chain counts as one
    request with the final response's status, its latency the whole chain's."""
    requests: list[RequestSpec] = Field(min_length=1)

    @field_validator("cluster")
    @classmethod
    def _cluster_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from lab.cluster.address import parse_cluster

        return parse_cluster(value).text

    @field_validator("stages", mode="before")
    @classmethod
    def _not_too_many_stages(cls, value: object) -> object:
        # Counted before each stage is validated: 100,000 of them would take a while.
        if isinstance(value, list) and len(value) > MAX_STAGES:
            raise ValueError(f"at most {MAX_STAGES:,} stages, got {len(value):,}")
        return value

    @model_validator(mode="after")
    def _check_model(self) -> LoadSpec:
        if self.client == "fast":
            for name in ("http2", "follow_redirects"):
                if getattr(self, name):
                    raise FieldError(
                        "needs the httpx client engine; the fast engine speaks HTTP/1.1 and "
                        'follows no redirects (use client = "httpx" or "auto")',
                        (name,),
                    )
        if self.model == "closed":
            if self.rate is not None:
                raise FieldError(
                    "'rate' is for the open model; the closed model uses 'vus' "
                    '(or set model = "open")',
                    ("rate",),
                )
            if self.vus is None and not self.stages:
                raise FieldError(
                    "the closed model needs 'vus' (virtual users) or 'stages'", ("vus",)
                )
            if self.connections is not None:
                raise FieldError(
                    "'connections' applies to the open model; in the closed model each VU "
                    "holds one connection",
                    ("connections",),
                )
        else:
            if self.vus is not None:
                raise FieldError(
                    "'vus' is for the closed model; the open model uses 'rate' "
                    "(requests per second)",
                    ("vus",),
                )
            if self.max_rps is not None:
                raise FieldError(
                    "'max_rps' caps the closed model; in the open model 'rate' sets the pace",
                    ("max_rps",),
                )
            if self.think_time > 0:
                raise FieldError(
                    "'think_time' applies to the closed model; the open model sends on schedule",
                    ("think_time",),
                )
            if self.rate is None and not self.stages:
                raise FieldError(
                    "the open model needs 'rate' (requests per second) or 'stages'", ("rate",)
                )
            for i, request in enumerate(self.requests):
                for where in request.vu_fields():
                    raise FieldError(
                        f"{{{VU_PLACEHOLDER}}} is a VU's number, and the open model has no VUs "
                        "(each arrival is a new visitor); use the closed model, or a params "
                        "placeholder",
                        ("requests", i, *where),
                    )
        total = self.total_duration_s
        if total > MAX_DURATION_S:
            raise FieldError(f"add up to {total / 3600:g}h; a run lasts at most 24h", ("stages",))
        if self.warmup >= total:
            raise FieldError(
                f"must be shorter than the run ({seconds_text(total)}), got {seconds_text(self.warmup)}",
                ("warmup",),
            )
        return self

    @property
    def total_duration_s(self) -> float:
        """Length of the run in seconds, warm-up included."""
        if self.stages:
            return sum(stage.duration for stage in self.stages)
        return self.duration

    @property
    def start_level(self) -> float:
        """VUs or rate at t = 0."""
        return self.level_at(0.0)

    @property
    def peak_level(self) -> float:
        """Highest VUs or rate over the run (to size pools and worker shares)."""
        levels = [self.start_level, *(stage.target for stage in self.stages)]
        return max(levels)

    def level_at(self, t_s: float) -> float:
        """VUs (closed model) or requests per second (open model) at time ``t_s``.

        Stages ramp linearly from the previous stage's target; the first one from
        ``vus``/``rate`` when given, else from 0. After the last stage its target holds.

        Args:
            t_s: seconds since the start of the run, warm-up included.
        """
        base = self.vus if self.model == "closed" else self.rate
        level = float(base) if base is not None else 0.0
        if not self.stages or t_s <= 0:
            return level
        elapsed = 0.0
        for stage in self.stages:
            if t_s < elapsed + stage.duration:
                return level + (stage.target - level) * (t_s - elapsed) / stage.duration
            elapsed += stage.duration
            level = stage.target
        return level


MAX_SWEEP_LEVELS = 100


class LevelRange(BaseModel):
    """Sweep levels as a range: ``{start = 1, stop = 64, factor = 2}`` (1, 2, 4 … 64) or
    ``{start = 100, stop = 1000, step = 100}``; ``stop`` is included when reached."""

    model_config = ConfigDict(extra="forbid")

    start: float = Field(gt=0, allow_inf_nan=False)
    stop: float = Field(gt=0, allow_inf_nan=False)
    step: float | None = Field(None, gt=0, allow_inf_nan=False)
    factor: float | None = Field(None, gt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_way(self) -> LevelRange:
        if (self.step is None) == (self.factor is None):
            raise ValueError("give exactly one of 'step' (add) or 'factor' (multiply)")
        if self.stop < self.start:
            raise FieldError(f"must be >= start ({self.start:g}) (got {self.stop:g})", ("stop",))
        count = len(self.values())
        if count > MAX_SWEEP_LEVELS:
            raise ValueError(f"makes more than {MAX_SWEEP_LEVELS} levels; use a larger "
                             f"{'step' if self.step is not None else 'factor'} or a smaller stop")
        if count < 2:
            raise ValueError(f"makes {count} level ({self.start:g}); a sweep needs at least 2: "
                             f"raise stop or lower the {'step' if self.step is not None else 'factor'}")
        return self

    def values(self) -> list[float]:
        out: list[float] = []
        value = self.start
        while value <= self.stop * (1 + 1e-9) and len(out) <= MAX_SWEEP_LEVELS:
            out.append(round(value, 9))
            value = value + self.step if self.step is not None else value * (self.factor or 2)
        return out


_SWEEP_INT_FIELDS = {"vus", "workers", "cpus", "max_in_flight", "connections", "replicas"}
_SWEEP_LOAD_FIELDS = {"vus", "rate", "think_time", "max_rps", "max_in_flight", "connections",
                      "workers", "timeout"}
_SWEEP_TARGET_FIELDS = {"workers", "cpus", "replicas"}


class SweepSpec(BaseModel):
    """The ``[sweep]`` table: run each variant once per level of one parameter.

    ``parameter``: ``vus`` (closed model), ``rate`` (open model), ``workers`` (the
    target's server processes), ``target.workers`` / ``target.cpus``, ``load.<field>``
    (``think_time``, ``max_rps``, ``timeout``, ``workers`` = generator processes, ...), or
    a target environment variable as ``env.NAME`` (or a bare ``NAME`` that ``[target]
    env`` sets). Each level is a stored run of ``duration`` (warm-up excluded).
    """

    model_config = ConfigDict(extra="forbid")

    parameter: str
    levels: list[float] | LevelRange
    duration: PositiveDuration | None = None
    """Seconds per level (default: ``[load] duration``)."""
    warmup: NonNegativeDuration | None = None
    """Seconds at the start of each level excluded from its figures (default: ``[load] warmup``)."""
    slo_p99_ms: float = Field(100.0, gt=0, allow_inf_nan=False)
    """Open-model rate sweeps: the p99 latency (ms) under which a level meets the SLO."""

    @field_validator("levels", mode="before")
    @classmethod
    def _range_table(cls, value: object) -> object:
        # A table is a range; report its own error rather than "must be a list", worded
        # like every other spec error and located at the range's own field.
        if isinstance(value, dict):
            try:
                return LevelRange.model_validate(value)
            except ValidationError as exc:
                loc, message = describe_error(exc.errors()[0], LevelRange)
                raise FieldError(message, loc) from None
        if not isinstance(value, list):
            raise ValueError("must be a list of levels such as [1, 2, 4] or a range such as "
                             f"{{start = 1, stop = 64, factor = 2}} (got {show_value(value)})")
        return value

    @field_validator("levels")
    @classmethod
    def _check_levels(cls, value: list[float] | LevelRange) -> list[float] | LevelRange:
        if isinstance(value, list):
            if len(value) < 2:
                raise ValueError(f"a sweep needs at least 2 levels, got {len(value)}")
            if len(value) > MAX_SWEEP_LEVELS:
                raise ValueError(f"at most {MAX_SWEEP_LEVELS} levels, got {len(value)}")
            bad = next((v for v in value if v <= 0 or not math.isfinite(v)), None)
            if bad is not None:
                raise ValueError(f"levels must be positive numbers (got {bad:g})")
            repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
            if repeated is not None:
                raise ValueError(f"levels must not repeat ({repeated:g} is given twice)")
        return value

    def values(self) -> list[float]:
        """The levels in run order."""
        return list(self.levels) if isinstance(self.levels, list) else self.levels.values()

    def overrides(self, level: float, target: TargetSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(target overrides, load overrides)`` that set ``parameter`` to ``level``.

        Raises:
            ValueError: the parameter is unknown, or the level does not fit it (a
                fraction for a whole-number field).
        """
        name = self.parameter
        part, _, field_name = name.partition(".")
        if not field_name:
            part, field_name = {"vus": ("load", "vus"), "rate": ("load", "rate"),
                                "workers": ("target", "workers")}.get(name, ("env", name))
            if part == "env" and name not in target.env:
                raise ValueError(
                    f"unknown parameter {name!r}: use vus, rate, workers, target.workers, "
                    f"target.cpus, load.<field> or env.<NAME> (or a NAME set in [target] env)")
        if part == "env":
            text = str(int(level)) if float(level).is_integer() else f"{level:g}"
            return {"env": {field_name: text}}, {}
        allowed = {"target": _SWEEP_TARGET_FIELDS, "load": _SWEEP_LOAD_FIELDS}.get(part, set())
        if field_name not in allowed:
            raise ValueError(f"unknown parameter {name!r}: sweepable fields are "
                             f"target.{{{', '.join(sorted(_SWEEP_TARGET_FIELDS))}}} and "
                             f"load.{{{', '.join(sorted(_SWEEP_LOAD_FIELDS))}}}")
        value: float | int = level
        if field_name in _SWEEP_INT_FIELDS:
            if not float(level).is_integer():
                raise ValueError(f"levels of {name} must be whole numbers, got {level:g}")
            value = int(level)
        return ({field_name: value}, {}) if part == "target" else ({}, {field_name: value})


_SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _service_need(value: object) -> object:
    # `redis = true` is the common spelling of "required".
    if value is True:
        return "required"
    if value is False:
        return "off"
    return value


ServiceNeed = Annotated[Literal["off", "required", "optional"], BeforeValidator(_service_need)]


class AppServiceSpec(BaseModel):
    """One ``[[services.apps]]`` entry: a second ASGI app the lab starts beside the
    target (a downstream service); the target finds it at ``<NAME>_URL``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    app: AppRef
    workers: int = Field(1, ge=1, le=64, strict=True)
    env: StringMap = Field(default_factory=dict)
    ready_path: UrlPath = "/health"

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _SERVICE_NAME_RE.match(value):
            raise ValueError(f"must be lower-case letters, digits and '_', starting with a letter "
                             f"(got {show_value(value)})")
        return value



class ServicesSpec(BaseModel):
    """The ``[services]`` table: backing services the lab starts for a run, on free
    loopback ports, ephemeral, stopped with the run.

    ``redis`` / ``postgres``: ``"off"`` (default), ``"required"`` (or ``true``: a variant
    that needs a missing one is skipped, with the reason) or ``"optional"`` (started when
    installed; else the target runs without it and falls back). The target finds them
    at ``REDIS_URL`` and ``DATABASE_URL``; apps at ``<NAME>_URL``.
    """

    model_config = ConfigDict(extra="forbid")

    redis: ServiceNeed = "off"
    postgres: ServiceNeed = "off"
    apps: list[AppServiceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_apps(self) -> ServicesSpec:
        seen: set[str] = set()
        for i, app in enumerate(self.apps):
            if app.name in seen:
                raise FieldError(f"duplicate service name {app.name!r}", ("apps", i, "name"))
            seen.add(app.name)
        return self


def _checked_thresholds(value: dict[str, str]) -> dict[str, str]:
    from lab.thresholds import parse_threshold

    for metric, condition in value.items():
        try:
            parse_threshold(f"{metric}{condition}")
        except ValueError as exc:
            raise FieldError(str(exc), (metric,)) from None
    return value


class VariantSpec(BaseModel):
    """One ``[[variants]]`` entry: a name and raw overrides of target and load fields."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    target: dict[str, Any] = Field(default_factory=dict)
    load: dict[str, Any] = Field(default_factory=dict)
    services: dict[str, Any] = Field(default_factory=dict)
    thresholds: dict[str, str] = Field(default_factory=dict)
    """Thresholds for this variant's runs, added to (or replacing, metric by metric) the
    experiment's."""
    balancer: dict[str, Any] | Literal[False] | None = None
    """Overrides of ``[balancer]`` fields (a whole table when the experiment has none), or
    ``false``: this variant runs without a balancer."""
    autoscale: dict[str, Any] | Literal[False] | None = None
    """Overrides of ``[autoscale]`` fields, or ``false``: a fixed number of replicas."""
    faults: list[dict[str, Any]] | None = None
    """Replaces the experiment's ``[[faults]]`` (``[]``: none)."""

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, str]) -> dict[str, str]:
        return _checked_thresholds(value)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _VARIANT_NAME_RE.match(value):
            raise ValueError(
                f"must be non-empty and use only letters, digits, '-', '_' and '.' "
                f"(got {show_value(value)})"
            )
        return value


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant with its overrides applied: the target and load one run uses."""

    name: str
    description: str
    target: TargetSpec
    load: LoadSpec
    services: ServicesSpec = dataclass_field(default_factory=lambda: ServicesSpec())
    thresholds: dict[str, str] = dataclass_field(default_factory=dict)
    """``metric → condition``: the experiment's, with the variant's on top."""
    balancer: BalancerSpec | None = None
    autoscale: AutoscaleSpec | None = None
    faults: tuple[FaultSpec, ...] = ()


# A variant setting the key drops these from the base (unless it sets them too): they
# belong to the alternative it replaces, and TOML has no way to unset a base value.
_TARGET_REPLACES: dict[str, tuple[str, ...]] = {
    "app": ("url",),
    "url": ("app", "env", "workers", "app_dir"),
}
_LOAD_REPLACES: dict[str, tuple[str, ...]] = {
    "vus": ("rate",),
    "rate": ("vus", "max_rps", "think_time"),
}
_M = TypeVar("_M", bound=BaseModel)


def _override(base: _M, overrides: dict[str, Any], replaces: dict[str, tuple[str, ...]]) -> _M:
    data = base.model_dump(exclude_unset=True)
    for key in overrides:
        for name in replaces.get(key, ()):
            if name not in overrides:
                data.pop(name, None)
    for key, value in overrides.items():
        if isinstance(data.get(key), dict) and isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return type(base).model_validate(data)


class Experiment(BaseModel):
    """A whole experiment file.

    ``name`` (the file's stem) and ``source`` (its path) are set by `load_experiment`.
    """

    model_config = ConfigDict(extra="forbid")

    experiment: ExperimentInfo
    target: TargetSpec
    load: LoadSpec
    services: ServicesSpec = Field(default_factory=ServicesSpec)
    sweep: SweepSpec | None = None
    thresholds: dict[str, str] = Field(default_factory=dict)
    """``metric = "<condition>"``, e.g. ``p95 = "<200ms"``: checked against every run."""
    balancer: BalancerSpec | None = None
    autoscale: AutoscaleSpec | None = None
    faults: list[FaultSpec] = Field(default_factory=list)
    variants: list[VariantSpec] = Field(default_factory=list)

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, str]) -> dict[str, str]:
        return _checked_thresholds(value)

    _name: str = PrivateAttr(default="")
    _source: Path | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        """The experiment's name: the TOML file's stem, e.g. ``caching``."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def source(self) -> Path | None:
        """The file the experiment was loaded from."""
        return self._source

    @source.setter
    def source(self, value: Path | None) -> None:
        self._source = value

    @model_validator(mode="after")
    def _check_variants(self) -> Experiment:
        seen: dict[str, int] = {}
        for i, variant in enumerate(self.variants):
            if variant.name in seen:
                first = seen[variant.name]
                raise FieldError(
                    f"duplicate variant name {variant.name!r} (also variants[{first}])",
                    ("variants", i, "name"),
                )
            seen[variant.name] = i
        # Resolve every variant now so a bad override fails at load time, not mid-session.
        for i, variant in enumerate(self.variants):
            for part, base, replaces in (
                ("target", self.target, _TARGET_REPLACES),
                ("load", self.load, _LOAD_REPLACES),
                ("services", self.services, {}),
            ):
                overrides = getattr(variant, part)
                try:
                    _override(base, overrides, replaces)
                except ValidationError as exc:
                    loc, message = describe_error(exc.errors()[0], type(base))
                    raise FieldError(message, ("variants", i, part, *loc)) from None
        for i in range(max(len(self.variants), 1)):
            self._resolve_scaling(i)
        for i, variant in enumerate(self.resolved_variants()):
            _check_scaling(variant, self._scaling_loc(i))
            if variant.target.app and variant.load.http2:
                where: tuple[str | int, ...] = (
                    ("variants", i, "load", "http2") if i < len(self.variants)
                    and "http2" in self.variants[i].load else ("load", "http2"))
                raise FieldError(
                    "the lab serves 'app' targets with uvicorn, which speaks HTTP/1.1 only; "
                    "HTTP/2 needs a 'url' target served by an HTTP/2 server (e.g. hypercorn)",
                    where,
                )
        if self.sweep is not None:
            for variant in self.resolved_variants():
                for level in self.sweep.values():
                    try:
                        sweep_variant(variant, self.sweep, level)
                    except ValueError as exc:
                        # ValidationError is a ValueError: name the field the level broke.
                        if isinstance(exc, ValidationError):
                            loc, message = describe_error(exc.errors()[0], LoadSpec)
                            message = f"level {level:g} gives {'.'.join(map(str, loc))}: {message}"
                        else:
                            message = str(exc)
                        where = "levels" if "level" in message else "parameter"
                        raise FieldError(message, ("sweep", where)) from None
        return self

    def _scaling_loc(self, i: int) -> Callable[[str], tuple[str | int, ...]]:
        """Where a scaling field of variant ``i`` was written: the variant, else the base."""
        variant = self.variants[i] if i < len(self.variants) else None

        def loc(part: str) -> tuple[str | int, ...]:
            head, _, rest = part.partition(".")
            if variant is not None:
                over = getattr(variant, head, None) if head != "target" else variant.target
                if head == "target" and rest in over:
                    return ("variants", i, "target", rest)
                if head != "target" and over is not None:
                    return ("variants", i, head, *(rest.split(".") if rest else ()))
            return (head, *(rest.split(".") if rest else ()))
        return loc

    def _resolve_scaling(self, i: int) -> tuple[BalancerSpec | None, AutoscaleSpec | None,
                                                tuple[FaultSpec, ...]]:
        """The balancer, autoscaler and faults of variant ``i`` (0 without variants).

        Raises:
            FieldError: an override does not validate (located in the variant).
        """
        variant = self.variants[i] if i < len(self.variants) else None
        parts: list[Any] = []
        for name, base, model in (("balancer", self.balancer, BalancerSpec),
                                  ("autoscale", self.autoscale, AutoscaleSpec)):
            over = getattr(variant, name) if variant is not None else None
            if over is None:
                parts.append(base)
                continue
            if over is False:
                parts.append(None)
                continue
            data = base.model_dump(exclude_unset=True) if base is not None else {}
            if name == "balancer" and "method" in over and "hash_key" not in over:
                data.pop("hash_key", None)  # the key belongs to the base's hash method
            data = {**data, **over}
            try:
                parts.append(model.model_validate(data))
            except ValidationError as exc:
                loc, message = describe_error(exc.errors()[0], model)
                raise FieldError(message, ("variants", i, name, *loc)) from None
        faults: tuple[FaultSpec, ...] = tuple(self.faults)
        if variant is not None and variant.faults is not None:
            checked = []
            for k, raw in enumerate(variant.faults):
                try:
                    checked.append(FaultSpec.model_validate(raw))
                except ValidationError as exc:
                    loc, message = describe_error(exc.errors()[0], FaultSpec)
                    raise FieldError(message, ("variants", i, "faults", k, *loc)) from None
            faults = tuple(checked)
        return parts[0], parts[1], faults

    def resolved_variants(self) -> list[ResolvedVariant]:
        """The variants with their overrides applied, in file order.

        Dict fields (``env``) are merged key by key with the base; other fields are
        replaced. A variant that switches alternatives drops what belonged to the other
        one: ``app`` drops the base's ``url``; ``url`` drops ``app``, ``env``, ``workers``
        and ``app_dir``; ``vus`` drops ``rate``; ``rate`` drops ``vus``, ``max_rps`` and
        ``think_time``. Without ``[[variants]]`` there is one variant named ``default``.

        Raises:
            pydantic.ValidationError: only for a model changed after validation; files
                loaded with `load_experiment` have been checked already.
        """
        if not self.variants:
            balancer, autoscale, faults = self._resolve_scaling(0)
            return [ResolvedVariant("default", "", self.target, self.load, self.services,
                                    dict(self.thresholds), balancer, autoscale, faults)]
        out = []
        for i, variant in enumerate(self.variants):
            balancer, autoscale, faults = self._resolve_scaling(i)
            out.append(ResolvedVariant(
                name=variant.name,
                description=variant.description,
                target=_override(self.target, variant.target, _TARGET_REPLACES),
                load=_override(self.load, variant.load, _LOAD_REPLACES),
                services=_override(self.services, variant.services, {}),
                thresholds={**self.thresholds, **variant.thresholds},
                balancer=balancer, autoscale=autoscale, faults=faults,
            ))
        return out


def initial_replicas(target: TargetSpec, autoscale: AutoscaleSpec | None) -> int:
    """How many replicas a run starts with: ``replicas``, else ``min_replicas`` (at least
    1) with an autoscaler, else 1."""
    if target.replicas is not None:
        return target.replicas
    return max(autoscale.min_replicas, 1) if autoscale is not None else 1


def _check_scaling(variant: ResolvedVariant, loc: Callable[[str], tuple[str | int, ...]]) -> None:
    """The rules between ``[target] replicas``, ``[balancer]``, ``[autoscale]`` and
    ``[[faults]]`` that no single table can check.

    Raises:
        FieldError: located where the offending value was written.
    """
    target, balancer, autoscale = variant.target, variant.balancer, variant.autoscale
    if target.url is not None:
        for name, value in (("balancer", balancer), ("autoscale", autoscale),
                            ("faults", variant.faults)):
            if value:
                raise FieldError("applies only to 'app' targets the lab starts, not to a 'url' "
                                 "target", loc(name))
        return
    replicas = target.replicas
    if balancer is None and loc("balancer")[0] == "variants":
        # The variant turned the balancer off: say so there, not at a table it inherits.
        if autoscale is not None:
            raise FieldError("false leaves [autoscale] without the balancer in front of the replicas "
                             "it changes; add autoscale = false to this variant", loc("balancer"))
        if replicas is not None and replicas > 1:
            raise FieldError(f"false leaves {replicas} replicas without a balancer to spread the load "
                             "over them; add target.replicas = 1 to this variant", loc("balancer"))
    if autoscale is not None and autoscale.metric in ("utilization", "in_flight") and not target.stats_path:
        raise FieldError(f"metric = \"{autoscale.metric}\" is read from each replica's stats path, "
                         f"which target.stats_path = \"\" turns off; use metric = \"cpu\" or \"rps\"",
                         loc("autoscale"))
    if autoscale is not None and balancer is None:
        raise FieldError("an autoscaler needs a [balancer] in front of the replicas it changes "
                         "(e.g. [balancer] method = \"least_conn\")", loc("autoscale"))
    if replicas is not None and replicas > 1 and balancer is None:
        raise FieldError(f"{replicas} replicas need a [balancer] to spread the load over them "
                         "(e.g. [balancer] method = \"round_robin\")", loc("target.replicas"))
    if replicas == 0 and (autoscale is None or autoscale.min_replicas > 0):
        raise FieldError("0 replicas serve nothing; 0 is allowed only with [autoscale] "
                         "min_replicas = 0 (scale from zero)", loc("target.replicas"))
    if autoscale is not None and replicas is not None and not (
            autoscale.min_replicas <= replicas <= autoscale.max_replicas):
        raise FieldError(f"must be within [autoscale] min_replicas..max_replicas "
                         f"({autoscale.min_replicas}..{autoscale.max_replicas}); got {replicas}",
                         loc("target.replicas"))
    total = variant.load.total_duration_s
    # A fixed fleet numbers its replicas 0..N-1 and each replacement of a killed one the
    # next number; an autoscaled one numbers every new replica, so any index may exist.
    kills_before = 0
    for k, fault in sorted(enumerate(variant.faults), key=lambda kf: kf[1].at):
        if balancer is None:
            raise FieldError("kill_replica needs replicas behind a [balancer]", (*loc("faults"), k))
        most = initial_replicas(target, None) + kills_before
        if autoscale is None and fault.replica >= most:
            raise FieldError(f"there is no replica {fault.replica} at {fault.at:g}s: the run has "
                             f"indexes 0..{most - 1} then (each replacement of a killed replica "
                             f"takes the next number)", (*loc("faults"), k, "replica"))
        kills_before += 1
        if fault.at >= total:
            raise FieldError(f"must be before the end of the load ({total:g}s); got {fault.at:g}s",
                             (*loc("faults"), k, "at"))


def sweep_variant(variant: ResolvedVariant, sweep: SweepSpec, level: float) -> ResolvedVariant:
    """The variant with the sweep's parameter set to ``level``; the level's duration and
    warm-up replace the load's.

    Raises:
        ValueError: the parameter or level does not fit (pydantic's ValidationError for a
            level a field refuses, e.g. ``rate`` on the closed model).
    """
    target_over, load_over = sweep.overrides(level, variant.target)
    if sweep.duration is not None:
        load_over = {**load_over, "duration": sweep.duration, "stages": []}
    if sweep.warmup is not None:
        load_over = {**load_over, "warmup": sweep.warmup}
    return dataclasses.replace(
        variant,
        target=_override(variant.target, target_over, _TARGET_REPLACES),
        load=_override(variant.load, load_over, _LOAD_REPLACES),
    )


