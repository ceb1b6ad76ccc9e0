"""The lab's Textual app: experiments → live run → history → compare.

``lab`` (or ``lab tui``) calls ``run_tui``. The app is one more subscriber to the
engine's events (see ``lab.tui.screens.live``); it reads the database only from thread
workers, each with its own connection, and writes it only through the engine's
``StoreRecorder`` during a run (``lab.session.RunSequence``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.driver import Driver

from lab.errors import ExitCode, LabError
from lab.results import open_results
from lab.session import PreparedRuns, RunPlanFn, prepare
from lab.spec import find_experiment, load_experiment
from lab.store import DatabaseGoneError, Store, StoreError, unsaved_beside
from lab.tui.browser_driver import BrowserSessionDriver, ViewerGone
from lab.tui.messages import OpenCompare, OpenHistory, OpenSweeps, StartRuns
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.confirm import ConfirmScreen
from lab.tui.screens.experiments import ExperimentsScreen
from lab.tui.screens.help import HelpScreen
from lab.tui.screens.history import HistoryScreen
from lab.tui.screens.live import LiveScreen
from lab.tui.screens.sweep import SweepScreen

AUTORUN_ENV = "LAB_TUI_AUTORUN"
"""``EXPERIMENT`` or ``EXPERIMENT:VARIANT``: start that run as soon as the app opens."""
EXIT_WHEN_DONE_ENV = "LAB_TUI_EXIT_WHEN_DONE"
"""``1``: quit the app when the auto-started runs have ended (benchmarks, demos)."""


class LabApp(App[None]):
    """Scalability Lab's terminal UI.

    Args:
        db_path: the results database (created when missing).
        experiments_dir: where the experiment files are listed from.
        autorun: ``EXPERIMENT`` or ``EXPERIMENT:VARIANT`` to start at once, or None.
        exit_when_done: with ``autorun``, quit once its runs have ended.
        run_plan_fn: the engine's ``run_plan`` when None (tests inject a fake event source).
        handle_signals: stop a run cleanly on SIGTERM / SIGHUP (the real terminal app;
            tests leave their event loop's signal handling alone).
    """

    CSS_PATH = "lab.tcss"
    TITLE = "Scalability Lab"
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False),
    ]

    def __init__(self, db_path: Path, experiments_dir: Path, *, autorun: str | None = None,
                 exit_when_done: bool = False, run_plan_fn: RunPlanFn | None = None,
                 handle_signals: bool = False, view_only: bool = False) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        """The results database."""
        self.experiments_dir = Path(experiments_dir)
        """Where experiments are listed from."""
        self.view_only = view_only
        """Look only (``lab web`` for an audience): nothing starts, stops, changes or
        deletes a run, and the results database is only read."""
        self.autorun = autorun
        self.exit_when_done = exit_when_done
        self.run_plan_fn = run_plan_fn
        self.handle_signals = handle_signals
        self._store: Store | None = None
        self._db_seen = self.db_path.exists()
        self.live: LiveScreen | None = None
        """The Live screen of the latest runs, if any."""
        self.terminal_gone = False
        """Set on SIGHUP: nothing may be drawn any more."""

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        """Open the experiments list; start the auto-run if one was asked for."""
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, lambda: self.call_later(self.action_quit))
            loop.add_signal_handler(signal.SIGHUP, self._hangup)
        self.push_screen(ExperimentsScreen())
        if self.autorun:
            self._start_autorun(self.autorun)

    def _start_autorun(self, spec: str) -> None:
        name, _, variant = spec.partition(":")
        try:
            exp = load_experiment(find_experiment(name, self.experiments_dir))
            prepared = prepare(exp, variants=[variant] if variant else None)
        except LabError as exc:
            self.notify(f"{AUTORUN_ENV}={spec}: {exc}", severity="error", timeout=15)
            return
        self.start_runs(prepared, exit_when_done=self.exit_when_done)

    def recording_store(self) -> Store:
        """The store the Live screen's ``StoreRecorder`` writes to (opened on first use).

        Used only from the event loop's thread, where the engine calls its listeners;
        readers open their own connection in their threads.

        Raises:
            StoreError: the database cannot be written or is damaged (checked before a
                run starts, as ``lab run`` does); or the lab is view-only.
        """
        if self.view_only:
            raise StoreError(f"{self.db_path}: view-only: this view does not write the results database")
        if self._store is None:
            self._store = open_results(self.db_path, check=True)
            self._db_seen = True
        return self._store

    def reading_store(self) -> Store | None:
        """A new read-only connection to the results database, for a reader thread (the
        caller closes it); None while no database exists (nothing stored yet).

        Raises:
            DatabaseGoneError: the database was deleted while the lab was open (it is not
                empty: its runs are gone); the message names the files that keep the runs
                stored since.
            StoreError: the file is not a results database, or cannot be read.
        """
        if not self.db_path.exists():
            if self._db_seen:
                raise DatabaseGoneError(self._gone_message())
            return None
        self._db_seen = True
        return open_results(self.db_path, readonly=True)

    def _gone_message(self) -> str:
        kept = unsaved_beside(self.db_path)
        where = (f"the runs kept since are in {', '.join(str(p) for p in kept)} (lab runs --db FILE)"
                 if kept else "no run has been kept elsewhere since")
        return (f"{self.db_path}: the results database was deleted while the lab was open; "
                f"its runs are gone, {where}")

    def refuse_in_view_only(self, what: str) -> bool:
        """In a view-only lab, say that this view cannot do ``what`` and return True."""
        if not self.view_only:
            return False
        self.notify(f"view-only: this view cannot {what}; the presenter's lab has the controls",
                    severity="warning", timeout=6)
        return True

    def on_unmount(self) -> None:
        """Close the recording connection."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, except in a ``lab web`` session: there the browser going away
        is a hang-up (``lab.tui.browser_driver``), not a quit that cancels a run."""
        from textual.drivers.web_driver import WebDriver

        driver = super().get_driver_class()
        if issubclass(driver, WebDriver) and not issubclass(driver, BrowserSessionDriver):
            return BrowserSessionDriver
        return driver

    def on_viewer_gone(self, message: ViewerGone) -> None:
        """The browser tab of a ``lab web`` session was closed: as a terminal hang-up."""
        self._hangup("stopped: the browser tab was closed")

    def _hangup(self, reason: str = "stopped: the terminal was closed") -> None:
        """The terminal is gone (its window closed, its tmux session killed, its browser
        tab closed): the run is stopped with ``reason`` and stored as aborted."""
        # Textual's output thread dies on its first failed write, after which the app
        # would block on the thread's full queue and never end the run. Point the
        # terminal's descriptors at /dev/null, stop drawing, end the run cleanly, and
        # leave without restoring a terminal that no longer exists.
        self.terminal_gone = True
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
        self.call_later(self._quit_after_hangup, reason)

    async def _quit_after_hangup(self, reason: str) -> None:
        if self.live is not None and self.live.running:
            await self.live.stop_and_wait(reason)
        if self._store is not None:
            self._store.close()
        os._exit(ExitCode.INTERRUPTED)

    async def action_quit(self) -> None:
        """Quit; a run going on is stopped first (stored as aborted) and every child
        process it started is ended before the app exits."""
        if self.live is not None and self.live.running:
            self.notify("Stopping the run…")
            await self.live.stop_and_wait("stopped: the lab was closed")
        self.exit()

    # ------------------------------------------------------------------ navigation

    def sections(self) -> list[tuple[str, type, str]]:
        """Help sections: every screen's keys, then the app's; in a view-only lab only the
        screens it can show (no live run, no deletion), each with a hint it can follow."""
        if self.view_only:
            return [
                ("Experiments", ExperimentsScreen, ExperimentsScreen.HELP_VIEW_ONLY),
                ("History", HistoryScreen, HistoryScreen.HELP),
                ("Compare", CompareScreen, CompareScreen.HELP),
                ("Sweep", SweepScreen, SweepScreen.HELP),
                ("Everywhere", LabApp, "ctrl+p opens the command palette (themes, keys)."),
            ]
        return [
            ("Experiments", ExperimentsScreen, ExperimentsScreen.HELP),
            ("Live run", LiveScreen, LiveScreen.HELP),
            ("History", HistoryScreen, HistoryScreen.HELP),
            ("Compare", CompareScreen, CompareScreen.HELP),
            ("Sweep", SweepScreen, SweepScreen.HELP),
            ("Confirm", ConfirmScreen, "the question before a run is deleted."),
            ("Everywhere", LabApp, "ctrl+p opens the command palette (themes, keys)."),
        ]

    def action_help(self) -> None:
        """Show every key."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.sections(), view_only=self.view_only))

    def active_run_ids(self) -> set[int]:
        """Ids of runs being recorded now (never deleted from under the engine)."""
        if self.live is None or not self.live.running:
            return set()
        return self.live.active_run_ids()

    def start_runs(self, prepared: PreparedRuns, exit_when_done: bool = False) -> None:
        """Run prepared runs on the Live screen, unless a run is already going on (or the
        lab is view-only); each variant set aside for a missing service is one warning
        with the reason, as ``lab run`` prints it."""
        if self.refuse_in_view_only("start runs"):
            return
        if self.live is not None and self.live.running:
            self.notify("A run is going on: stop it (s) before starting another.", severity="warning")
            return
        for skip in prepared.skipped:
            self.notify(f"skipping variant {skip.variant}: {skip.reason}", severity="warning", timeout=15)
        if not prepared.plans:
            return
        self.live = LiveScreen(prepared, self.run_plan_fn, exit_when_done=exit_when_done)
        self.push_screen(self.live)

    def open_history(self) -> None:
        """Show the stored runs."""
        self.push_screen(HistoryScreen())

    def open_compare(self, run_ids: Sequence[int]) -> None:
        """Show runs side by side."""
        self.push_screen(CompareScreen(run_ids))

    def open_sweeps(self, run_ids: Sequence[int]) -> None:
        """Show the sweeps these runs are levels of, overlaid."""
        self.push_screen(SweepScreen(run_ids))

    # ------------------------------------------------------------------ what screens ask

    @on(StartRuns)
    def _on_start_runs(self, message: StartRuns) -> None:
        self.start_runs(message.prepared, exit_when_done=message.exit_when_done)

    @on(OpenHistory)
    def _on_open_history(self, message: OpenHistory) -> None:
        self.open_history()

    @on(OpenCompare)
    def _on_open_compare(self, message: OpenCompare) -> None:
        self.open_compare(message.run_ids)

    @on(OpenSweeps)
    def _on_open_sweeps(self, message: OpenSweeps) -> None:
        self.open_sweeps(message.run_ids)


def run_tui(db_path: Path, experiments_dir: Path, view_only: bool = False) -> None:
    """Run the terminal UI until the user quits (``lab`` / ``lab tui``).

    Two environment variables start a run at once, for demos and the TUI-versus-headless
    benchmark: ``LAB_TUI_AUTORUN=EXPERIMENT[:VARIANT]`` and ``LAB_TUI_EXIT_WHEN_DONE=1``
    (with which a target that does not import ends the app with its line and exit code 2).

    Args:
        db_path: the results database.
        experiments_dir: where the experiment files are listed from.
        view_only: look only (see ``LabApp.view_only``).
    """
    app = LabApp(
        db_path,
        experiments_dir,
        autorun=os.environ.get(AUTORUN_ENV) or None,
        exit_when_done=os.environ.get(EXIT_WHEN_DONE_ENV) == "1",
        handle_signals=True,
        view_only=view_only,
    )
    app.run()
    if app.exit_when_done and app.return_code:
        # Nobody watched the auto-run: its refusal (a target that does not import) ends
        # the process with the exit code `lab run` gives it.
        sys.exit(app.return_code)
