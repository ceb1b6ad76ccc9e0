"""Errors whose message is the one line to print, each with its exit code.

A light module (no SQLite, no Textual) so that the command line can catch them without
importing what raises them.
"""

from __future__ import annotations

from lab.exitcodes import ExitCode


class LabError(Exception):
    """An error the user can act on: ``str(error)`` is one line, naming the file or option."""

    exit_code: ExitCode = ExitCode.BAD_INPUT
    """What the ``lab`` command exits with when this error ends it."""


class StoreError(LabError):
    """A results database that cannot be used; the message is one line naming the file.

    Raised for a file that is not a results database, and for every SQLite failure to
    open, read or write one (a damaged file, a read-only or immutable file, a full disk,
    a lock held too long): callers print the message, never a traceback.
    """
