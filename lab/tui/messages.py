"""The TUI's messages.

Past-tense messages that thread workers post to their screens: workers never touch
widgets; they do one thing (read the experiments folder, query the database) and post one
of these, and the screen's handler updates its widgets.

Requests a screen posts to the app, which navigates (a screen never calls up into the
app): ``StartRuns``, ``OpenHistory``, ``OpenCompare``, ``OpenSweeps``.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from lab.analysis.sweep import SweepAnalysis
from lab.session import FleetReport, PreparedRuns
from lab.store import IntervalRow, RunRecord
from lab.tui.catalog import ExperimentEntry


class ExperimentsLoaded(Message):
    """The experiments folder was read."""

    def __init__(self, entries: Sequence[ExperimentEntry]) -> None:
        super().__init__()
        self.entries = list(entries)
        """Every experiment file, valid or not, by name."""


class RunsLoaded(Message):
    """The stored runs were read."""

    def __init__(self, runs: Sequence[RunRecord], problem: str | None = None) -> None:
        super().__init__()
        self.runs = list(runs)
        """Every stored run, newest first."""
        self.problem = problem
        """Why there are no runs to show although the database held some (it was deleted
        while the lab was open), one line; None otherwise."""


class RunDeleted(Message):
    """A run was deleted from the database (or could not be)."""

    def __init__(self, run_id: int, error: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        """The run."""
        self.error = error
        """Why it could not be deleted; None when it was."""


class ComparisonLoaded(Message):
    """The runs to compare and their per-second series were read."""

    def __init__(self, runs: Sequence[RunRecord], intervals: dict[int, list[IntervalRow]],
                 error: str | None = None, fleets: dict[int, FleetReport] | None = None) -> None:
        super().__init__()
        self.runs = list(runs)
        """The runs, in the order the user picked them."""
        self.intervals = intervals
        """Each run's intervals, by run id."""
        self.fleets = fleets or {}
        """The replicas and autoscaler decisions of the runs behind a balancer, by run id."""
        self.error = error
        """Why they could not be read (e.g. a run was deleted meanwhile); None when fine."""


class RunsFinished(Message):
    """Every run the Live screen was asked for has ended (or the user stopped them)."""

    def __init__(self, run_ids: Sequence[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        """Stored ids of the runs, in the order they ran."""


class SweepsLoaded(Message):
    """The sweeps to show were read and analysed."""

    def __init__(self, sweeps: Sequence[tuple[int, str, SweepAnalysis]], error: str | None = None) -> None:
        super().__init__()
        self.sweeps = list(sweeps)
        """``(sweep id, variant, analysis)`` in display order."""
        self.error = error
        """Why they could not be read (none of the runs belongs to a sweep...)."""


class StartRuns(Message):
    """Run these prepared runs in turn on the Live screen (unless a run is going on, or
    the lab is view-only)."""

    def __init__(self, prepared: PreparedRuns, exit_when_done: bool = False) -> None:
        super().__init__()
        self.prepared = prepared
        """The runs, planned and checked (``lab.session.prepare``)."""
        self.exit_when_done = exit_when_done
        """Quit the app once they have ended."""


class OpenHistory(Message):
    """Show the stored runs."""


class OpenCompare(Message):
    """Show these runs side by side."""

    def __init__(self, run_ids: Sequence[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        """The runs, in the order picked."""


class OpenSweeps(Message):
    """Show the sweeps these runs are levels of, overlaid."""

    def __init__(self, run_ids: Sequence[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        """Runs of the sweeps to show."""
