"""Durations in experiment files and options: ``"250ms"``, ``"20s"``, ``"2m"``, ``"1h"`` or a
number of seconds, floats in seconds once parsed; none may exceed 24 hours.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import (
    BeforeValidator,
)

from lab.spec.wording import show_value

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
            f"got {show_value(value)}"
        )
    return seconds


MAX_DURATION_S = 24 * 3600.0
"""The longest duration any field takes (a run, a stage, a timeout): a day. Longer is a
typo (``100000h``), not an experiment."""


def check_duration_range(seconds: float, value: object, allow_zero: bool = False) -> float:
    """``seconds`` when within (0 or >0)..24 h, else ValueError naming the value and
    the range."""
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"must be {'>=' if allow_zero else '>'} 0 (got {show_value(value)})")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"must be at most 24h (got {show_value(value)})")
    return seconds


def _positive_duration(value: object) -> float:
    return check_duration_range(parse_duration(value), value)


def _non_negative_duration(value: object) -> float:
    return check_duration_range(parse_duration(value), value, allow_zero=True)


PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
"""Seconds, > 0; written as ``"20s"`` etc. in TOML."""
NonNegativeDuration = Annotated[float, BeforeValidator(_non_negative_duration)]
"""Seconds, >= 0; written as ``"0s"`` etc. in TOML."""



def seconds_text(seconds: float) -> str:
    return f"{seconds:g}s"


