"""Click parameter types for stored-row ids (``lab show RUN_ID``, ``lab sweep SWEEP_ID``...).

SQLite integers are signed 64-bit: a larger Python int raises OverflowError inside the
query, and an id below 1 is never assigned. Checking the range where the id is parsed
turns both into click's one-line usage error (exit 2) before any database is opened.
"""

from __future__ import annotations

from typing import Any

import click

MAX_ID = 2**63 - 1
"""The largest id SQLite can store (``INTEGER PRIMARY KEY`` is a signed 64-bit int)."""


def _short(text: str) -> str:
    """The user's value, cut so that a pasted 5,000-digit number stays one short line."""
    return text if len(text) <= 30 else text[:27] + "..."


class RowId(click.ParamType):
    """A whole number 1..2^63−1 naming a stored row; ``what`` is how errors name it."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.name = what.replace(" ", "_")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip(), 10)
            except ValueError:
                # Also Python's "exceeds the limit for integer string conversion".
                self.fail(f"{self.what} must be a whole number between 1 and {MAX_ID}, "
                          f"got {_short(str(value))!r}", param, ctx)
        if not 1 <= number <= MAX_ID:
            self.fail(f"{self.what} must be between 1 and {MAX_ID}, got {_short(str(value))}",
                      param, ctx)
        return number

    def __repr__(self) -> str:
        return f"RowId({self.what!r})"


RUN_ID = RowId("run id")
"""A run's id, as ``lab runs`` lists it."""
SWEEP_ID = RowId("sweep id")
"""A sweep's id, as ``lab sweep`` lists it."""
