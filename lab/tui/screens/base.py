"""What every screen of the lab shares: one place where a failed worker is reported."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from lab.tui.app import LabApp

R = TypeVar("R")
A = TypeVar("A", bound=Callable[..., Any])


def controls(what: str) -> Callable[[A], A]:
    """Mark a screen's action that starts, stops, changes or deletes runs: in a view-only
    lab (``lab web --view-only``) it does nothing but say so.

    Args:
        what: what the action would do, after "this view cannot", e.g. ``start runs``.
    """
    def wrap(action: A) -> A:
        @functools.wraps(action)
        def guarded(self: LabScreen[Any], *args: Any, **kwargs: Any) -> Any:
            if self.lab.refuse_in_view_only(what):
                return None
            return action(self, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap


class LabScreen(Screen[R]):
    """A screen whose workers' failures become a notification, never a crash."""

    @property
    def lab(self) -> LabApp:
        """The app, typed."""
        from lab.tui.app import LabApp

        assert isinstance(self.app, LabApp)
        return self.app

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False, so an exception (a locked or corrupt
        # database, an unreadable folder) lands here instead of ending the app.
        if event.state == WorkerState.ERROR:
            error: Any = event.worker.error
            self.notify(f"{event.worker.name or 'worker'} failed: {error}", severity="error",
                        timeout=10)
