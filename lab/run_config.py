"""A run's configuration as typed fields: what ``RunPlan.config()`` stores in
``runs.config`` (and ``lab run --format json`` shows as ``config``), read from its JSON in
one place (``RunConfig.from_dict``, ``LoadSettings.from_dict``). The stored JSON keeps its
keys; everything that reads them goes through these dataclasses. Imports nothing of the
lab, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GeneratorSettings", "LoadSettings", "RunConfig", "SweepSettings"]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class LoadSettings:
    """The stored ``[load]`` of a run, as far as reports and analyses read it."""

    model: str = "closed"
    """``closed`` (VUs) or ``open`` (arrival rate)."""
    warmup_s: float = 0.0
    """Seconds at the start left out of the summary."""
    duration_s: float | None = None
    """The planned length without stages, seconds."""
    vus: int | None = None
    rate: float | None = None
    """Open model: the arrival rate without stages, req/s."""
    think_time_s: float = 0.0
    """Closed model: each VU's pause between a response and its next request."""
    stages: tuple[tuple[float, float], ...] = ()
    """``(duration_s, target)`` of each stage of the load profile; empty for a constant level."""
    max_rps: float | None = None
    """Closed model: the cap on requests per second over every VU."""
    client: str | None = None
    """``fast`` or ``httpx``."""
    workers: int | None = None
    """Generator worker processes."""
    http2: bool = False
    follow_redirects: bool = False
    table: dict[str, Any] = field(default_factory=dict)
    """The whole stored table (``LoadSpec.model_dump(mode="json")``)."""

    @classmethod
    def from_dict(cls, load: Mapping[str, Any]) -> LoadSettings:
        """The typed view of a ``[load]`` dict (``LoadSpec.model_dump()``, durations in
        seconds), stored or fresh; any missing or odd key reads as its default."""
        stages = load.get("stages")
        return cls(
            model=_str(load.get("model")) or "closed",
            warmup_s=_float(load.get("warmup")) or 0.0,
            duration_s=_float(load.get("duration")),
            vus=_int(load.get("vus")),
            rate=_float(load.get("rate")),
            think_time_s=_float(load.get("think_time")) or 0.0,
            stages=tuple((float(st["duration"]), float(st["target"])) for st in stages
                         if isinstance(st, dict)) if isinstance(stages, list) else (),
            max_rps=_float(load.get("max_rps")),
            client=_str(load.get("client")),
            workers=_int(load.get("workers")),
            http2=bool(load.get("http2")),
            follow_redirects=bool(load.get("follow_redirects")),
            table=dict(load),
        )

    @classmethod
    def of(cls, load: LoadSettings | Mapping[str, Any]) -> LoadSettings:
        """``load`` as typed fields, whichever of the two it is."""
        return load if isinstance(load, LoadSettings) else cls.from_dict(load)


@dataclass(frozen=True)
class GeneratorSettings:
    """Where a run's generator workers ran (``config.generators``, written once they were
    ready)."""

    source: str = "local"
    """``local`` (worker processes of the lab) or ``dask`` (tasks on a Dask cluster)."""
    cluster: str | None = None
    """The cluster as the user named it (``local:2``, ``tcp://host:8786``)."""
    scheduler: str | None = None
    """The Dask scheduler's address."""
    workers: int | None = None
    hosts: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorSettings:
        hosts = data.get("hosts")
        return cls(source=_str(data.get("source")) or "local", cluster=_str(data.get("cluster")),
                   scheduler=_str(data.get("scheduler")), workers=_int(data.get("workers")),
                   hosts=tuple(h for h in hosts if isinstance(h, str)) if isinstance(hosts, list) else ())


@dataclass(frozen=True)
class SweepSettings:
    """Which level of a sweep a run is."""

    parameter: str
    """The swept field, e.g. ``load.vus`` or ``env.USL_SERIAL_MS``."""
    level: float | None
    index: int | None
    """The level's position among ``levels``."""
    levels: tuple[float, ...]


@dataclass(frozen=True)
class RunConfig:
    """A run's stored configuration (``runs.config``, written by ``RunPlan.config()``) as
    typed fields, read from its JSON in this one place (``from_dict``). A key an older lab
    did not write, or wrote with another type, reads as its default."""

    experiment: str = ""
    variant: str = ""
    load: LoadSettings = field(default_factory=LoadSettings)
    sweep: SweepSettings | None = None
    """The sweep level it is; None for a plain run."""
    repeat: int | None = None
    """Which repetition (``lab run --repeat N``), with ``repeat_group``."""
    repeat_group: str | None = None
    """Shared by the repetitions of one variant; None for a run not repeated."""
    thresholds: tuple[str, ...] = ()
    generator_workers_note: str | None = None
    """Why fewer generator workers ran than were asked for, if they did."""
    balancer_method: str | None = None
    """The ``[balancer]`` method of a run with replicas behind nginx; None without one."""
    replicas: int | None = None
    """Replicas at the start of a run behind a balancer."""
    autoscale: dict[str, Any] | None = None
    """The ``[autoscale]`` table as the run used it (time constants in seconds)."""
    slo_p99_ms: float | None = None
    """The experiment's latency objective, when it set one."""
    autoscale_note: str | None = None
    """Which of the autoscaler's time constants differ from the HPA's defaults."""
    generators: GeneratorSettings | None = None
    """Where the generator workers ran; None for a run stored before it was recorded."""

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RunConfig:
        """The typed view of a stored config dict (any missing or odd key: its default)."""
        sweep = config.get("sweep")
        return cls(
            experiment=_str(config.get("experiment")) or "",
            variant=_str(config.get("variant")) or "",
            load=LoadSettings.from_dict(_dict(config.get("load"))),
            sweep=SweepSettings(
                parameter=str(sweep.get("parameter", "")),
                level=_float(sweep.get("level")),
                index=_int(sweep.get("index")),
                levels=tuple(v for v in (_float(x) for x in sweep.get("levels") or []) if v is not None),
            ) if isinstance(sweep, dict) else None,
            repeat=_int(config.get("repeat")),
            repeat_group=_str(config.get("repeat_group")) or None,
            thresholds=tuple(t for t in config.get("thresholds") or [] if isinstance(t, str)),
            generator_workers_note=_str(config.get("generator_workers_note")) or None,
            balancer_method=_str(_dict(config.get("balancer")).get("method")) or None,
            replicas=_int(config.get("replicas")),
            autoscale=dict(config["autoscale"]) if isinstance(config.get("autoscale"), dict) else None,
            slo_p99_ms=_float(config.get("slo_p99_ms")),
            autoscale_note=_str(config.get("autoscale_note")) or None,
            generators=(GeneratorSettings.from_dict(config["generators"])
                        if isinstance(config.get("generators"), dict) else None),
        )
