"""TOML experiment file → validated experiment model, with one-line errors.

An experiment file has four parts: ``[experiment]`` (title, question, description),
``[target]`` (the system under test), ``[load]`` (load model and the request mix in
``[[load.requests]]``) and optional ``[[variants]]`` that override target or load fields.
Everything is checked when the file is loaded, every resolved variant included, so a
mistake is reported before anything is started: as ``file:line: field.path: message``.

Durations are written as ``"250ms"``, ``"20s"``, ``"2m"``, ``"1h"`` or a number of
seconds and are floats in seconds after validation; none may exceed 24 hours.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tomllib
import types
import typing
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

__all__ = [
    "Experiment",
    "ExperimentInfo",
    "LoadSpec",
    "ParamSpec",
    "RequestSpec",
    "ResolvedVariant",
    "ServicesSpec",
    "SpecError",
    "SweepSpec",
    "Stage",
    "TargetSpec",
    "VariantSpec",
    "check_duration_range",
    "check_target_importable",
    "find_experiment",
    "located_error",
    "module_problem",
    "load_experiment",
    "parse_duration",
    "sweep_variant",
]


# --------------------------------------------------------------------------- errors


class SpecError(Exception):
    """A problem with an experiment file, reported as one line.

    ``str(err)`` is ``path:line: field: message``; ``:line`` is left out when the line is
    unknown and ``field: `` when the problem is not about one field.

    Attributes:
        path: the experiment file (or the name the user asked for).
        line: 1-based line in the file, or None.
        field: dotted field path such as ``load.requests[0].path``, or None.
        message: what is wrong, and what is allowed.
    """

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str) -> None:
        # Passing everything to Exception keeps the error picklable across processes.
        super().__init__(str(path), line, field, message)
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        body = f"{self.field}: {self.message}" if self.field else self.message
        return re.sub(r"\s*[\r\n]+\s*", " ", f"{where}: {body}")


class _FieldError(ValueError):
    """A ValueError raised from a model-level check that belongs to one field.

    Model validators report at the model's own location; ``loc`` lets the message point
    at the field that is actually wrong (and so at its line in the file).
    """

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


# ------------------------------------------------------------------------ durations

_DURATION_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Parse a duration into seconds.

    Args:
        value: ``"250ms"``, ``"20s"``, ``"1.5s"``, ``"2m"``, ``"1h"``, a numeric string, or
            an int/float number of seconds. Negative values parse (range checks are the
            caller's job, so they can say which field is wrong).

    Returns:
        The duration in seconds.

    Raises:
        ValueError: the value is not a duration (message shows the accepted forms).
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(
            "expected a duration like '250ms', '20s', '2m' or a number of seconds, "
            f"got {_show(value)}"
        )
    return seconds


MAX_DURATION_S = 24 * 3600.0
"""The longest duration any field takes (a run, a stage, a timeout): a day. Longer is a
typo (``100000h``), not an experiment."""


def check_duration_range(seconds: float, value: object, allow_zero: bool = False) -> float:
    """``seconds`` when within (0 or >0)..24 h, else ValueError naming the value and
    the range."""
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"must be {'>=' if allow_zero else '>'} 0 (got {_show(value)})")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"must be at most 24h (got {_show(value)})")
    return seconds


def _positive_duration(value: object) -> float:
    return check_duration_range(parse_duration(value), value)


def _non_negative_duration(value: object) -> float:
    return check_duration_range(parse_duration(value), value, allow_zero=True)


PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
"""Seconds, > 0; written as ``"20s"`` etc. in TOML."""
NonNegativeDuration = Annotated[float, BeforeValidator(_non_negative_duration)]
"""Seconds, >= 0; written as ``"0s"`` etc. in TOML."""


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


def _show(value: object) -> str:
    """A short, one-line rendering of a user value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _secs(seconds: float) -> str:
    return f"{seconds:g}s"


# --------------------------------------------------------------------------- models

_APP_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_VARIANT_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _app_ref(value: str) -> str:
    if not _APP_RE.match(value):
        raise ValueError(f"must look like 'module.path:attribute' (got {_show(value)})")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/' (got {_show(value)})")
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

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http:// or https:// URL with a host (got {_show(value)})")
        # Request paths start with "/", so a trailing slash here would double it.
        return value.rstrip("/")

    @field_validator("stats_path")
    @classmethod
    def _check_stats_path(cls, value: str | None) -> str | None:
        # TOML has no null, so an empty string is how a file switches stats off.
        if value is None or value == "":
            return None
        if not value.startswith("/"):
            raise ValueError(f"must start with '/' (got {_show(value)}); use \"\" to disable")
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
            for name in ("app_dir", "env", "workers", "cpus"):
                if name in self.model_fields_set and getattr(self, name) not in (None, {}, 1):
                    raise _FieldError(
                        "applies only to 'app' targets the lab starts, not to a 'url' target",
                        (name,),
                    )
        return self


class Stage(BaseModel):
    """One segment of a load profile: ramp linearly to ``target`` over ``duration``."""

    model_config = ConfigDict(extra="forbid")

    duration: PositiveDuration
    """Seconds."""
    target: float = Field(ge=0)
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
    s: float = Field(1.1, gt=0)
    low: int | None = None
    high: int | None = None
    start: int = 1
    stop: int | None = None
    values: list[str | int | float] | None = None
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _fields_fit_distribution(self) -> ParamSpec:
        uses = _PARAM_FIELDS[self.distribution]
        for name, field in type(self).model_fields.items():
            # A value equal to the default counts as not given, so that a full
            # model_dump() (as sent to generator workers) validates again.
            given = name in self.model_fields_set and getattr(self, name) != field.default
            if name != "distribution" and name not in uses and given:
                raise _FieldError(
                    f"does not apply to distribution {self.distribution!r} "
                    f"(it uses: {', '.join(uses)})",
                    (name,),
                )
        if self.distribution == "zipf" and self.n is None:
            raise _FieldError("distribution 'zipf' needs 'n' (number of distinct values)", ("n",))
        if self.distribution == "uniform":
            for name in ("low", "high"):
                if getattr(self, name) is None:
                    raise _FieldError(f"distribution 'uniform' needs {name!r}", (name,))
            assert self.low is not None and self.high is not None
            if self.low > self.high:
                raise _FieldError(f"must be >= low ({self.low}) (got {self.high})", ("high",))
        if self.distribution == "sequence" and self.stop is not None and self.stop < self.start:
            raise _FieldError(f"must be >= start ({self.start}) (got {self.stop})", ("stop",))
        if self.distribution == "choice":
            if not self.values:
                raise _FieldError(
                    "distribution 'choice' needs a non-empty 'values' list", ("values",)
                )
            if self.weights is not None:
                if len(self.weights) != len(self.values):
                    raise _FieldError(
                        f"needs one weight per value ({len(self.values)}), got {len(self.weights)}",
                        ("weights",),
                    )
                if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                    raise _FieldError("must all be >= 0 with a sum > 0", ("weights",))
        return self


class RequestSpec(BaseModel):
    """One entry of the request mix (``[[load.requests]]``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    """Label in reports; defaults to ``METHOD path`` where a consumer needs one."""
    method: str = "GET"
    path: UrlPath
    """Starts with '/'; ``{name}`` placeholders are filled from ``params``."""
    weight: float = Field(1.0, gt=0)
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

    @model_validator(mode="after")
    def _placeholders_have_params(self) -> RequestSpec:
        for name in _PLACEHOLDER_RE.findall(self.path):
            if not name.isidentifier():
                raise _FieldError(f"placeholder {{{name}}} must be a name like {{id}}", ("path",))
            if name not in self.params:
                raise _FieldError(
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
                raise _FieldError(f"is not used: the path has no {{{name}}} placeholder", ("params", name))
        for name, value in self.headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise _FieldError("header names and values cannot contain line breaks", ("headers", name))
        return self

    @property
    def placeholders(self) -> list[str]:
        """Names of the ``{placeholders}`` in ``path``, in order."""
        return _PLACEHOLDER_RE.findall(self.path)


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
    rate: float | None = Field(None, gt=0, le=1_000_000)
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
    max_rps: float | None = Field(None, gt=0)
    """Closed model: cap on total requests per second."""
    workers: int | None = Field(None, ge=1, le=64, strict=True)
    """Load generator worker processes; None: one per core left after the target's
    processes, at least 1 (resolved by ``lab.plan``)."""
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
                    raise _FieldError(
                        "needs the httpx client engine; the fast engine speaks HTTP/1.1 and "
                        'follows no redirects (use client = "httpx" or "auto")',
                        (name,),
                    )
        if self.model == "closed":
            if self.rate is not None:
                raise _FieldError(
                    "'rate' is for the open model; the closed model uses 'vus' "
                    '(or set model = "open")',
                    ("rate",),
                )
            if self.vus is None and not self.stages:
                raise _FieldError(
                    "the closed model needs 'vus' (virtual users) or 'stages'", ("vus",)
                )
            if self.connections is not None:
                raise _FieldError(
                    "'connections' applies to the open model; in the closed model each VU "
                    "holds one connection",
                    ("connections",),
                )
        else:
            if self.vus is not None:
                raise _FieldError(
                    "'vus' is for the closed model; the open model uses 'rate' "
                    "(requests per second)",
                    ("vus",),
                )
            if self.max_rps is not None:
                raise _FieldError(
                    "'max_rps' caps the closed model; in the open model 'rate' sets the pace",
                    ("max_rps",),
                )
            if self.think_time > 0:
                raise _FieldError(
                    "'think_time' applies to the closed model; the open model sends on schedule",
                    ("think_time",),
                )
            if self.rate is None and not self.stages:
                raise _FieldError(
                    "the open model needs 'rate' (requests per second) or 'stages'", ("rate",)
                )
        total = self.total_duration_s
        if total > MAX_DURATION_S:
            raise _FieldError(f"add up to {total / 3600:g}h; a run lasts at most 24h", ("stages",))
        if self.warmup >= total:
            raise _FieldError(
                f"must be shorter than the run ({_secs(total)}), got {_secs(self.warmup)}",
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
            raise _FieldError(f"must be >= start ({self.start:g}) (got {self.stop:g})", ("stop",))
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


_SWEEP_INT_FIELDS = {"vus", "workers", "cpus", "max_in_flight", "connections"}
_SWEEP_LOAD_FIELDS = {"vus", "rate", "think_time", "max_rps", "max_in_flight", "connections",
                      "workers", "timeout"}
_SWEEP_TARGET_FIELDS = {"workers", "cpus"}


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
    slo_p99_ms: float = Field(100.0, gt=0)
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
                loc, message = _describe(exc.errors()[0], LevelRange)
                raise _FieldError(message, loc) from None
        if not isinstance(value, list):
            raise ValueError("must be a list of levels such as [1, 2, 4] or a range such as "
                             f"{{start = 1, stop = 64, factor = 2}} (got {_show(value)})")
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
                             f"(got {_show(value)})")
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
                raise _FieldError(f"duplicate service name {app.name!r}", ("apps", i, "name"))
            seen.add(app.name)
        return self


def _checked_thresholds(value: dict[str, str]) -> dict[str, str]:
    from lab.thresholds import parse_threshold

    for metric, condition in value.items():
        try:
            parse_threshold(f"{metric}{condition}")
        except ValueError as exc:
            raise _FieldError(str(exc), (metric,)) from None
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
                f"(got {_show(value)})"
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
                raise _FieldError(
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
                    loc, message = _describe(exc.errors()[0], type(base))
                    raise _FieldError(message, ("variants", i, part, *loc)) from None
        for i, variant in enumerate(self.resolved_variants()):
            if variant.target.app and variant.load.http2:
                where: tuple[str | int, ...] = (
                    ("variants", i, "load", "http2") if i < len(self.variants)
                    and "http2" in self.variants[i].load else ("load", "http2"))
                raise _FieldError(
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
                            loc, message = _describe(exc.errors()[0], LoadSpec)
                            message = f"level {level:g} gives {'.'.join(map(str, loc))}: {message}"
                        else:
                            message = str(exc)
                        where = "levels" if "level" in message else "parameter"
                        raise _FieldError(message, ("sweep", where)) from None
        return self

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
            return [ResolvedVariant("default", "", self.target, self.load, self.services,
                                    dict(self.thresholds))]
        return [
            ResolvedVariant(
                name=variant.name,
                description=variant.description,
                target=_override(self.target, variant.target, _TARGET_REPLACES),
                load=_override(self.load, variant.load, _LOAD_REPLACES),
                services=_override(self.services, variant.services, {}),
                thresholds={**self.thresholds, **variant.thresholds},
            )
            for variant in self.variants
        ]


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
    return ResolvedVariant(
        name=variant.name,
        description=variant.description,
        target=_override(variant.target, target_over, _TARGET_REPLACES),
        load=_override(variant.load, load_over, _LOAD_REPLACES),
        services=variant.services,
        thresholds=variant.thresholds,
    )


# ------------------------------------------------ pydantic error → one-line message


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional so the walker sees the container or model type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _clean_loc(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Any]]:
    """Drop pydantic's internal loc parts (union member tags, ``[key]``).

    Returns:
        The cleaned loc, and the type of the value at each prefix of it (``types[0]`` is
        ``root``, ``types[i]`` the type at ``loc[:i]``); ``Any`` where unknown.
    """
    out: list[Any] = []
    kinds: list[Any] = [root]
    current: Any = root
    for part in loc:
        tp = _unwrap(current)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if isinstance(part, int):
            current = args[0] if origin is list and args else Any
        elif part == "[key]":
            continue
        elif _is_model(tp):
            field = tp.model_fields.get(part)
            current = field.annotation if field is not None else Any
        elif origin is dict:
            current = args[1] if len(args) == 2 else Any
        elif tp is Any:
            current = Any
        else:
            # A union member or validator tag such as 'str' or 'function-after[...]'.
            current = Any
            continue
        out.append(part)
        kinds.append(current)
    return tuple(out), kinds


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            text += f".{key}" if text else key
    return text


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_COMPARISONS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _describe(err: Any, root: type[BaseModel]) -> tuple[tuple[Any, ...], str]:
    """Turn one pydantic error dict into (field loc, human message)."""
    loc, kinds = _clean_loc(root, tuple(err.get("loc", ())))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")

    if kind in ("value_error", "assertion_error"):
        exc = ctx.get("error")
        if isinstance(exc, _FieldError):
            return (*loc, *exc.loc), str(exc)
        message = str(exc) if exc is not None else str(err.get("msg", ""))
        return loc, re.sub(r"^(Value|Assertion) error, ", "", message)
    if kind == "extra_forbidden":
        parent = _unwrap(kinds[-2]) if len(kinds) >= 2 else Any
        if _is_model(parent):
            return loc, f"unknown field; allowed: {', '.join(parent.model_fields)}"
        return loc, "unknown field"
    if kind == "missing":
        here = _unwrap(kinds[-1])
        if _is_model(here) and len(loc) == 1:
            return loc, f"missing [{_dotted(loc)}] section"
        inner = typing.get_args(here)
        if typing.get_origin(here) is list and inner and _is_model(_unwrap(inner[0])):
            return loc, f"required; add at least one [[{_dotted(loc)}]] table"
        return loc, "required field missing"
    if kind == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        what = loc[-1] if loc and isinstance(loc[-1], str) else "value"
        return loc, f"unknown {what} {_show(value)}; allowed: {allowed}"
    if kind in _COMPARISONS:
        key, symbol = _COMPARISONS[kind]
        limit = ctx.get(key)
        shown = limit
        if isinstance(limit, float):
            # "1e+06" would hide a limit of a million: whole numbers are shown in full.
            shown = f"{int(limit)}" if limit.is_integer() else f"{limit:g}"
        return loc, f"must be {symbol} {shown} (got {_show(value)})"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return loc, "must not be empty"
        return loc, f"needs at least {ctx.get('min_length')} items"
    if kind == "string_too_short":
        return loc, "must not be empty"
    if kind in _TYPE_WORDS:
        return loc, f"must be {_TYPE_WORDS[kind]} (got {_show(value)})"
    if kind == "finite_number":
        return loc, f"must be a finite number (got {_show(value)})"
    message = str(err.get("msg", "invalid value"))
    return loc, message[:1].lower() + message[1:]


def _spec_error(
    exc: ValidationError, path: str, source: str | None, root: type[BaseModel]
) -> SpecError:
    loc, message = _describe(exc.errors()[0], root)
    line = _find_line(source, loc) if source is not None else None
    return SpecError(path, line, _dotted(loc) or None, message)


# ----------------------------------------------------------- line-number heuristics

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", key)
    return tuple(p.strip().strip("\"'") for p in parts if p.strip())


def _key_pattern(keys: list[str]) -> re.Pattern[str]:
    alternatives = [f"(?:{re.escape(k)}|\"{re.escape(k)}\"|'{re.escape(k)}')" for k in keys]
    return re.compile(r"^\s*" + r"\s*\.\s*".join(alternatives) + r"\s*[=.]")


def _find_line(source: str, loc: tuple[Any, ...]) -> int | None:
    """Best-guess 1-based line for a field path in TOML text.

    Finds the deepest ``[table]`` / ``[[array.table]]`` header matching a prefix of the
    path (counting occurrences of array tables to match list indexes), then the first
    ``key =`` or dotted ``key.sub =`` line for the rest of the path before the next
    header. Falls back to the header's line, then None.
    """
    segments: list[tuple[str, int | None]] = []
    for part in loc:
        if isinstance(part, int):
            if segments and segments[-1][1] is None:
                segments[-1] = (segments[-1][0], part)
        else:
            segments.append((str(part), None))

    lines = source.splitlines()
    headers: list[tuple[int, int]] = []  # (line index, matched depth)
    counters: dict[tuple[str, ...], int] = {}
    quoted: set[int] = set()  # lines that start inside a multi-line string
    in_string: str | None = None
    for index, text in enumerate(lines):
        if in_string is not None:
            quoted.add(index)
        for quote in ('"""', "'''"):
            if in_string in (None, quote) and text.count(quote) % 2 == 1:
                in_string = None if in_string == quote else quote
        # A description may well contain a line like "[x]": it is not a header.
        if index in quoted:
            continue
        match = _HEADER_RE.match(text)
        if not match:
            continue
        name = _split_key(match.group(2))
        if match.group(1) == "[[":
            counters[name] = counters.get(name, -1) + 1
            for other in list(counters):
                if len(other) > len(name) and other[: len(name)] == name:
                    del counters[other]
        depth = 0
        if len(name) <= len(segments) and all(
            name[j] == segments[j][0]
            and (segments[j][1] is None or counters.get(name[: j + 1]) == segments[j][1])
            for j in range(len(name))
        ):
            depth = len(name)
        headers.append((index, depth))

    best_index, best_depth = -1, 0
    for index, depth in headers:
        if depth > best_depth:
            best_index, best_depth = index, depth

    region_end = next((i for i, _ in headers if i > best_index), len(lines))
    rest = [key for key, _ in segments[best_depth:]]
    for size in range(len(rest), 0, -1):
        pattern = _key_pattern(rest[:size])
        for index in range(best_index + 1, region_end):
            if index not in quoted and pattern.match(lines[index]):
                return index + 1
    return best_index + 1 if best_index >= 0 else None


# --------------------------------------------------------------------------- loading


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file, every resolved variant included.

    Does not import or start the target (see `check_target_importable`).

    Args:
        path: the TOML file.

    Returns:
        The experiment, with ``name`` (file stem) and ``source`` (the path) set.

    Raises:
        SpecError: the file is missing or unreadable, is not valid TOML, or does not
            describe a valid experiment (unknown or missing fields, wrong types, bad
            durations, unknown distributions, bad variant overrides, ...).
    """
    file = Path(path)
    shown = str(path)
    try:
        file.stem.encode("utf-8")
    except UnicodeEncodeError:
        # The name is the experiment's, stored with every run as text: bytes that are not
        # UTF-8 could not be stored (nor typed back to find the runs).
        readable = shown.encode("utf-8", "backslashreplace").decode("utf-8")
        raise SpecError(readable, None, None, "the file name is not valid UTF-8; rename the file "
                        "(its name is the experiment's name)") from None
    try:
        source = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(shown, None, None, "file not found") from None
    except IsADirectoryError:
        raise SpecError(shown, None, None, "is a directory, not an experiment file") from None
    except UnicodeDecodeError:
        raise SpecError(shown, None, None, "cannot read file: not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(shown, None, None, f"cannot read file: {exc.strerror or exc}") from None

    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        position = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if position:
            line = int(position.group(1))
            message = message.replace(position.group(0), f" (column {position.group(2)})")
        elif "(at end of document)" in message:
            line = max(len(source.splitlines()), 1)
            message = message.replace(" (at end of document)", " (at end of file)")
        raise SpecError(shown, line, None, f"invalid TOML: {message}") from None

    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, shown, source, Experiment) from None
    experiment.name = file.stem
    experiment.source = file
    return experiment


EXPERIMENTS_ENV = "LAB_EXPERIMENTS"
"""A folder ``lab run NAME`` also looks in for ``NAME.toml``."""


def experiment_dirs(db_path: str | Path | None = None) -> list[tuple[Path, str]]:
    """Where else ``lab run NAME`` looks, after ``--experiments``: ``$LAB_EXPERIMENTS``,
    then beside the results database in use (its ``experiments/`` folder, then its own
    folder), so a lab kept in one folder runs from anywhere.

    Returns:
        ``(folder, why it is looked in)`` pairs, in order.
    """
    dirs: list[tuple[Path, str]] = []
    env = os.environ.get(EXPERIMENTS_ENV)
    if env:
        dirs.append((Path(env), f"${EXPERIMENTS_ENV}"))
    if db_path is not None and str(db_path):
        folder = Path(db_path).parent
        dirs += [(folder / "experiments", f"beside {db_path}"), (folder, f"beside {db_path}")]
    return dirs


def find_experiment(name_or_path: str, experiments_dir: Path = Path("experiments"),
                    more_dirs: typing.Sequence[tuple[Path, str]] = ()) -> Path:
    """Find an experiment file by path or by name.

    Args:
        name_or_path: an existing file path, or a name such as ``caching`` looked up as
            ``caching.toml`` in ``experiments_dir``, then in each of ``more_dirs``.
        experiments_dir: where named experiments live first (``--experiments``).
        more_dirs: further folders, each with why it is looked in (``experiment_dirs``).

    Returns:
        The file's path.

    Raises:
        SpecError: nothing matches; the message says where it looked and lists the
            experiment names found there.
    """
    given = Path(name_or_path)
    if given.is_file():
        return given
    if given.is_dir():
        raise SpecError(name_or_path, None, None, "is a directory, not an experiment file")
    places: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for folder, why in [(experiments_dir, ""), *more_dirs]:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            places.append((folder, why))
    names = [f"{name_or_path}.toml"] + ([name_or_path] if name_or_path.endswith(".toml") else [])
    for folder, _why in places:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    known = sorted({p.stem for folder, _why in places if folder.is_dir() for p in folder.glob("*.toml")})
    groups: list[tuple[str, list[str]]] = []
    for folder, why in places:
        if groups and groups[-1][0] == why:
            groups[-1][1].append(f"{folder}/")
        else:
            groups.append((why, [f"{folder}/"]))
    looked = ", ".join(" and ".join(shown) + (f" ({why})" if why else "") for why, shown in groups)
    found = f"known experiments: {', '.join(known)}" if known else "no experiments found there"
    raise SpecError(name_or_path, None, None, f"no such experiment file (looked in {looked}); {found}")


_IMPORT_CHECK = """\
import importlib, os, sys
sys.path.insert(0, os.getcwd())
module_name, _, attributes = sys.argv[1].partition(":")
obj = importlib.import_module(module_name)
for attribute in attributes.split("."):
    obj = getattr(obj, attribute)
if not callable(obj):
    sys.exit(f"TypeError: {sys.argv[1]} is {type(obj).__name__}, not an ASGI app")
import inspect
call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else getattr(obj, "__call__", obj)
if inspect.isclass(obj) or not inspect.iscoroutinefunction(call):
    sys.exit(f"TypeError: {sys.argv[1]} is not an ASGI app (uvicorn needs an "
             "'async def app(scope, receive, send)' or an object whose __call__ is async)")
"""
_IMPORT_TIMEOUT_S = 30.0
_importable: set[tuple[str, str]] = set()


def check_target_importable(target: TargetSpec, path: str) -> None:
    """Check that an ``app`` target imports, without importing it into the lab.

    The import runs in a subprocess (``sys.executable``) with ``app_dir`` (or the current
    directory) as cwd and ``target.env`` added to the environment, so the app's import
    side effects stay out of the lab's process. Successes are cached per (app, directory)
    for the life of the process; failures are not, so a fixed module passes next time.
    Does nothing for ``url`` targets.

    Args:
        target: the (resolved) target.
        path: the experiment file, for the error's location.

    Raises:
        SpecError: field ``target.app`` (or ``target.app_dir``) when the module or the
            attribute cannot be imported within 30 s; the message carries the last line
            of the import's error output.
    """
    if target.app is None:
        return
    workdir = Path(target.app_dir) if target.app_dir else Path.cwd()
    key = (target.app, str(workdir.resolve()))
    if key in _importable:
        return

    def fail(field: str, message: str) -> SpecError:
        return located_error(path, tuple(field.split(".")), message)

    if not workdir.is_dir():
        raise fail("target.app_dir", f"no such directory: {str(workdir)!r}")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _IMPORT_CHECK, target.app],
            cwd=workdir,
            env={**os.environ, **target.env},
            capture_output=True,
            text=True,
            timeout=_IMPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise fail(
            "target.app", f"cannot import {target.app!r}: timed out after {_IMPORT_TIMEOUT_S:g} s"
        ) from None
    except OSError as exc:
        raise fail("target.app", f"cannot import {target.app!r}: {exc}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise fail("target.app", f"cannot import {target.app!r}: {reason}")
    _importable.add(key)


def located_error(path: str | Path, loc: tuple[str | int, ...], message: str) -> SpecError:
    """A `SpecError` for the field at ``loc`` of the file at ``path``, with its line
    when the file can be read (for checks made after loading, such as importability)."""
    try:
        line = _find_line(Path(path).read_text(encoding="utf-8"), loc)
    except (OSError, UnicodeDecodeError):
        line = None
    return SpecError(path, line, _dotted(loc) or None, message)


def module_problem(app: str, app_dir: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """Why the module of ``app`` (``module.path:attribute``) cannot be found, or None.

    Looks the module up the way the uvicorn process the lab starts will: ``app_dir`` (or
    the current directory) first, then the current directory, ``PYTHONPATH`` (the
    process's own ``env`` wins over the lab's), then the lab's own ``sys.path`` (same
    interpreter, same site-packages). Only finders are asked, level by level, so no code
    of the app or of its packages runs in the lab. The attribute is not checked: that
    needs the import.

    Returns:
        Python's own wording, e.g. ``No module named 'targets.nope'``; None when found.
    """
    module = app.partition(":")[0]
    cwd = os.getcwd()
    pythonpath = (env or {}).get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    search = [str(Path(cwd, app_dir)) if app_dir else cwd, cwd,
              *(p for p in pythonpath.split(os.pathsep) if p), *sys.path]
    parts = module.split(".")
    found = importlib.machinery.PathFinder.find_spec(parts[0], search)
    if found is None:
        # Built-in modules and editable installs are found by the other finders on
        # sys.meta_path; for a top-level name that asks them without importing anything.
        try:
            found = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            found = None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if found is None:
            return f"No module named {name!r}"
        if depth == len(parts):
            return None
        locations = found.submodule_search_locations
        if locations is None:
            return f"No module named {'.'.join(parts[:depth + 1])!r}; {name!r} is not a package"
        found = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth + 1]), list(locations))
    return None
