"""The driver of a ``lab web`` session: Textual's web driver, except that the browser
going away is a terminal hang-up, not a quit.

textual-serve sends its session a ``quit`` packet once the browser's websocket has closed
(the tab was closed or left, the browser ended, the network went). Textual's web driver
turns that into an immediate exit, which would cancel a run in the middle: the run would
be left ``running`` and lose what it measured. Here it posts ``ViewerGone`` instead, and
the app does what it does on SIGHUP: stops the run (stored as aborted, with what it
measured), draws nothing more, ends every child process and exits.
"""

from __future__ import annotations

from textual.drivers.web_driver import WebDriver
from textual.message import Message


class ViewerGone(Message):
    """The browser of this session is gone: nothing can be drawn or typed any more."""


class BrowserSessionDriver(WebDriver):
    """``textual.drivers.web_driver.WebDriver`` whose ``quit`` packet posts ``ViewerGone``."""

    def on_meta(self, packet_type: str, payload: dict[str, object]) -> None:
        """Dispatch a packet of textual-serve (called on the driver's input thread)."""
        if packet_type == "quit":
            self._app.post_message(ViewerGone())  # thread-safe: Textual hands it to the loop
            return
        super().on_meta(packet_type, payload)
