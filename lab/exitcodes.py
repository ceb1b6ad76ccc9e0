"""The lab's exit codes, in one place (documented in README.md)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Every run completed."""
    RUN_FAILED = 1
    """A run failed: the target crashed or could not start, or a generator died."""
    BAD_INPUT = 2
    """Bad input: a missing or invalid experiment file, option, run id or database."""
    INTERRUPTED = 130
    """Ctrl-C or SIGTERM: returned only after the run is stored as aborted and every
    child process is gone."""
