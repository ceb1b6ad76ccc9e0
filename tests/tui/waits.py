"""Waiting in Pilot tests for what the test needs to see, never for a fixed time: a
busy machine draws later, it does not draw differently."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.pilot import Pilot


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool], what: str,
                     within_s: float = 20.0) -> None:
    """Let the app run until ``condition()`` holds; fail naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {within_s:g} s waiting for {what}"
        await pilot.pause(0.02)


async def settle(pilot: Pilot[Any], app: App[Any], within_s: float = 20.0) -> None:
    """Wait until no worker is pending or running and the screen has handled what they
    posted (a worker's message may start another worker). Not while a run goes on: its
    worker lasts as long as the run."""
    deadline = time.monotonic() + within_s
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        if all(worker.is_finished for worker in app.workers):
            return
        assert time.monotonic() < deadline, f"workers still busy after {within_s:g} s"
