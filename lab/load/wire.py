"""The wire format between the engine and its generator worker processes: JSON lines.

Every message is a frozen dataclass here, written with ``encode`` and read with
``decode_report`` (worker → engine), ``decode_command`` and ``decode_config``
(engine → worker), so each key is spelled once. The model is locust's
``rpc/protocol.py`` ``Message`` (one class, ``serialize``/``unserialize`` in one place) and
its ``StatsEntryDict``; here each message has typed fields of its own, checked by pydantic
in strict mode, so a malformed line is one ``WireError`` naming the field rather than a
``KeyError`` deep in the merge (the reader says which worker sent it).

stdin (engine → worker): first a ``WorkerConfig`` line, then commands: ``Start``
(``{"cmd": "start", "t0": monotonic}``), ``SetLevel`` (``{"cmd": "level", "value":
total}``) and ``Stop`` (``{"cmd": "stop"}``). End of stdin (the engine died) stops the
worker too.

stdout (worker → engine): ``Ready``, one ``IntervalReport`` per interval index in order,
then ``Done`` with the worker's error samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config

from lab.errors import GeneratorError

__all__ = [
    "Command",
    "Done",
    "ErrorSampleRow",
    "IntervalReport",
    "Ready",
    "SetLevel",
    "Start",
    "Stop",
    "WireError",
    "WorkerConfig",
    "WorkerReport",
    "decode_command",
    "decode_config",
    "decode_report",
    "encode",
]


class WireError(GeneratorError):
    """A line from a generator worker (or to one) that is not a message of this protocol."""


_FROZEN = {"frozen": True, "slots": True, "kw_only": True}
_STRICT = ConfigDict(strict=True)


@with_config(_STRICT)
@dataclass(**_FROZEN)
class WorkerConfig:
    """The first line a worker reads: what to load and its share of it."""

    base_url: str
    """Where requests go, e.g. ``http://127.0.0.1:8123``."""
    load: dict[str, Any]
    """The ``[load]`` table as ``LoadSpec.model_dump(mode="json")`` gives it; the worker
    validates it with ``LoadSpec``."""
    index: int = 0
    """This worker's index, 0 … workers − 1."""
    workers: int = 1
    """How many workers share the load."""
    seed: int = 0
    """Seed of the request picker (each worker adds its index)."""
    interval_s: float = 1.0
    """Length of one reported interval, seconds."""


@with_config(_STRICT)
@dataclass(**_FROZEN)
class Start:
    """Begin the load at ``t0``."""

    cmd: Literal["start"] = "start"
    t0: float
    """``time.monotonic()`` of the load's start (the same clock in every process)."""


@with_config(_STRICT)
@dataclass(**_FROZEN)
class SetLevel:
    """Hold the load at a level a user set (VUs or a rate, in total over all workers)."""

    cmd: Literal["level"] = "level"
    value: float


@with_config(_STRICT)
@dataclass(**_FROZEN)
class Stop:
    """End the load now; the worker still reports what it measured."""

    cmd: Literal["stop"] = "stop"


Command = Annotated[Start | SetLevel | Stop, Field(discriminator="cmd")]


@with_config(_STRICT)
@dataclass(**_FROZEN)
class Ready:
    """The worker has imported everything and waits for ``Start``."""

    type: Literal["ready"] = "ready"
    host: str = ""
    """The machine the worker runs on (its host name)."""
    pid: int = 0
    """The worker's process id on that machine."""
    clock_offset_ms: float | None = None
    """Cluster workers: how far this machine's clock is ahead of the Dask scheduler's, ms,
    beyond what the reading's round trip leaves open (0 within it); None for a local
    worker process."""


@with_config(_STRICT)
@dataclass(**_FROZEN)
class IntervalReport:
    """What one worker measured in one interval (see ``IntervalAccumulator.report``).

    Histograms are HDR histograms, base64-encoded (``LatencyHistogram.encode``), ``""``
    when empty, so the engine merges them exactly.
    """

    type: Literal["interval"] = "interval"
    index: int
    """The interval's index: it covers ``[t_s, t_s + duration_s)`` after the load's start."""
    t_s: float
    duration_s: float
    ok: int
    """Successful requests that completed in the interval."""
    errors: int
    """Failed attempts that completed in the interval."""
    bytes: int
    """Response bytes received."""
    dropped: int
    """Open model: requests that could not go out on schedule (in-flight cap reached)."""
    interrupted: int
    """Requests still in flight when the load stopped."""
    errors_by_class: dict[str, int]
    """Failed attempts by error class (``lab.events.ERROR_CLASSES``)."""
    active_vus: int
    target_rate: float
    """Requests per second this worker was scheduling at the interval's end."""
    stage: int
    """Index of the load stage at the interval's start."""
    histogram: str
    """Latency of successful requests."""
    histogram_all: str
    """Latency of every attempt, failed ones too."""
    histogram_service: str
    """Service time (from the actual send) of successful requests."""
    histogram_lag: str
    """The worker's lag: its loop-lag probe's late wake-ups and, open model, send lag."""
    cpu_percent: float | None = None
    """The worker's CPU over the interval, % of one core; None when not read."""
    in_flight_mean: float | None = None
    """Time-weighted mean number of this worker's requests outstanding."""


ErrorSampleRow = tuple[str, int | None, str, int]
"""(error class, HTTP status or None, one message, count)."""


@with_config(_STRICT)
@dataclass(**_FROZEN)
class Done:
    """The worker has sent its last interval."""

    type: Literal["done"] = "done"
    errors: tuple[ErrorSampleRow, ...] = field(default_factory=tuple)
    """One sample message per (error class, status), with how many attempts had it."""


WorkerReport = Annotated[Ready | IntervalReport | Done, Field(discriminator="type")]

_REPORT: TypeAdapter[Ready | IntervalReport | Done] = TypeAdapter(WorkerReport)
_COMMAND: TypeAdapter[Start | SetLevel | Stop] = TypeAdapter(Command)
_CONFIG: TypeAdapter[WorkerConfig] = TypeAdapter(WorkerConfig)
_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def encode(message: WorkerConfig | Start | SetLevel | Stop | Ready | IntervalReport | Done) -> bytes:
    """One message as one JSON line (compact, ending in ``\\n``)."""
    return _ANY.dump_json(message) + b"\n"


def _decode(adapter: TypeAdapter[Any], line: bytes | str, what: str, tagged: bool = True) -> Any:
    try:
        return adapter.validate_json(line)
    except ValidationError as exc:
        raise WireError(f"{what}: {_describe(exc, line, tagged)}") from None


def decode_report(line: bytes | str) -> Ready | IntervalReport | Done:
    """A worker's stdout line as its message.

    Raises:
        WireError: not JSON, an unknown ``type``, a missing field or one of the wrong type;
            its text names the field and quotes the start of the line.
    """
    return _decode(_REPORT, line, "malformed report")


def decode_command(line: bytes | str) -> Start | SetLevel | Stop:
    """A command line on a worker's stdin.

    Raises:
        WireError: as ``decode_report``.
    """
    return _decode(_COMMAND, line, "malformed command")


def decode_config(line: bytes | str) -> WorkerConfig:
    """The first line on a worker's stdin.

    Raises:
        WireError: as ``decode_report``.
    """
    return _decode(_CONFIG, line, "malformed config", tagged=False)


def _describe(exc: ValidationError, line: bytes | str, tagged: bool) -> str:
    first = exc.errors(include_url=False)[0]
    # A tagged union's tag ("interval") leads the location; the field is what a reader needs.
    loc = [str(part) for part in first["loc"]]
    if tagged and loc:
        loc = loc[1:]
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    quoted = text if len(text) <= 80 else text[:77] + "..."
    where = f"field {'.'.join(loc)!r}: " if loc else ""
    return f"{where}{first['msg'].lower()} (line: {quoted!r})"
