"""What every screen of the lab shares: one place where a failed worker is reported, the
view-only guard, and what a screen may ask of the app (``LabContext``).

A screen never imports the app: it reads the app through ``LabContext`` (attributes
down) and asks it to navigate with messages (``lab.tui.messages``: ``StartRuns``,
``OpenHistory``, ``OpenCompare``, ``OpenSweeps``), which the app handles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from textual import events, on
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from lab.store import Store

R = TypeVar("R")
A = TypeVar("A", bound=Callable[..., Any])


def controls(what: str) -> Callable[[A], A]:
    """Mark a screen's action that starts, stops, changes or deletes runs: in a view-only
    lab (``lab web --view-only``) its key is not in the footer, and the action does nothing
    but say so.

    Args:
        what: what the action would do, after "this view cannot", e.g. ``start runs``.
    """
    def wrap(action: A) -> A:
        @functools.wraps(action)
        def guarded(self: LabScreen[Any], *args: Any, **kwargs: Any) -> Any:
            if self.lab.refuse_in_view_only(what):
                return None
            return action(self, *args, **kwargs)

        guarded.controls = what  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return wrap


def controlled(screen: object, action: str) -> str | None:
    """What ``screen``'s action ``action`` would do when it is marked with ``controls``
    (``start runs``, ...); None for an action that only looks."""
    return getattr(getattr(screen, f"action_{action}", None), "controls", None)


class LabContext(Protocol):
    """What a screen may read of the lab's app, and ask of it."""

    db_path: Path
    """The results database."""
    experiments_dir: Path
    """Where experiments are listed from."""
    terminal_gone: bool
    """The terminal is gone (SIGHUP): nothing may be drawn any more."""
    view_only: bool
    """Look only: no key starts, stops, changes or deletes runs (``lab web --view-only``)."""

    def reading_store(self) -> Store | None:
        """A new read-only connection for a reader thread (the caller closes it); None while
        no database exists."""

    def recording_store(self) -> Store:
        """The store the Live screen's recorder writes to."""

    def refuse_in_view_only(self, what: str) -> bool:
        """In a view-only lab, say that this view cannot do ``what`` and return True."""

    def active_run_ids(self) -> set[int]:
        """Ids of runs being recorded now."""


class LabScreen(Screen[R]):
    """A screen whose workers' failures become a notification, never a crash."""

    @property
    def lab(self) -> LabContext:
        """The app, as far as a screen may use it."""
        return cast("LabContext", self.app)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In a view-only lab, a key that starts, stops, changes or deletes runs is left out
        of the footer and of the keys the bindings handle (``on_key`` says why instead)."""
        return not (self.lab.view_only and controlled(self, action))

    def on_key(self, event: events.Key) -> None:
        """A key bound to a control in a view-only lab: say that this view cannot do it
        (its binding is off, so nothing else would answer it)."""
        if not self.lab.view_only:
            return
        for binding in Binding.make_bindings(self.BINDINGS):
            what = controlled(self, binding.action) if binding.key == event.key else None
            if what:
                event.stop()
                self.lab.refuse_in_view_only(what)
                return

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False, so an exception (a locked or corrupt
        # database, an unreadable folder) lands here instead of ending the app.
        if event.state == WorkerState.ERROR:
            error: Any = event.worker.error
            self.notify(f"{event.worker.name or 'worker'} failed: {error}", severity="error",
                        timeout=10)
