"""The lab's errors and exit codes: one tree, each class with the exit code it ends ``lab`` with.

A light module (no SQLite, no pydantic, no Textual) so that every layer can raise these
and the command line can catch them without importing what raises them. ``str(error)`` is
the one line to print; ``lab.cli.main`` prints it on stderr and exits with
``error.exit_code``, in one place.

The tree::

    LabError                  an error the user can act on; exit_code says how `lab` ends
    ├── BadInput              exit 2: a file, option, id or database the user named
    │   ├── SpecError         an experiment file: ``path:line: field: message``
    │   ├── InputError        a command-line option or argument the CLI itself checks
    │   ├── UnknownRunError   a run or sweep id the results database does not hold
    │   ├── UnknownVariantError  a ``--variant`` the experiment does not have
    │   └── StoreError        a results database that cannot be used (missing, foreign,
    │                         damaged, read-only, full)
    └── RunFailed             exit 1: a run could not go on; the engine stores the run as
        ├── TargetError       failed with this message as its reason
        ├── ServiceError
        └── GeneratorError

Modules raise the subclass that says what went wrong; they may define narrower classes
of their own under these (``lab.tui.web.WebError``, ``lab.analysis.fitdata.FitDataError``).
Lookups (``UnknownRunError``, ``UnknownVariantError``) are ``KeyError`` too, so callers
that catch a failed lookup keep working; their text is the message, unquoted.
"""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """The ``lab`` command's exit codes (documented in README.md)."""

    OK = 0
    """Every run completed."""
    RUN_FAILED = 1
    """A run failed: the target crashed or could not start, or a generator died."""
    BAD_INPUT = 2
    """Bad input: a missing or invalid experiment file, option, run id or database."""
    INTERRUPTED = 130
    """Ctrl-C or SIGTERM: returned only after the run is stored as aborted and every
    child process is gone."""


class LabError(Exception):
    """An error the user can act on: ``str(error)`` is one line, naming the file or option."""

    exit_code: ExitCode = ExitCode.BAD_INPUT
    """What the ``lab`` command exits with when this error ends it."""


class BadInput(LabError):
    """Bad input: what the user named (a file, an option, an id, a database) is wrong."""

    exit_code = ExitCode.BAD_INPUT


class SpecError(BadInput):
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


class InputError(BadInput):
    """Bad input found by the command line itself (an option, an argument); its message
    is the one line to print."""


class _Lookup(BadInput, KeyError):
    """A lookup that found nothing: a ``KeyError`` whose text is its message, unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownRunError(_Lookup):
    """No run (or sweep) with that id in the results database: ``no run with id 9``."""


class UnknownVariantError(_Lookup):
    """A variant the experiment does not have; the message lists the ones it has."""


class StoreError(BadInput):
    """A results database that cannot be used; the message is one line naming the file.

    Raised for a file that is not a results database, and for every SQLite failure to
    open, read or write one (a damaged file, a read-only or immutable file, a full disk,
    a lock held too long): callers print the message, never a traceback.
    """


class RunFailed(LabError):
    """A run could not go on; the engine stores the run as failed with this message as its
    reason (``lab run`` then exits 1)."""

    exit_code = ExitCode.RUN_FAILED


class TargetError(RunFailed):
    """The target did not start, did not become ready, or exited during the run."""


class ServiceError(RunFailed):
    """A backing service (redis-server, PostgreSQL, a downstream app) is missing or did not
    start."""


class GeneratorError(RunFailed):
    """A generator worker process did not start, or exited during the run."""
