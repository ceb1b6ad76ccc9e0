"""Unit tests start no processes and serve nothing with uvicorn: a test that tries fails at
once, naming what it started, so it moves to tests/e2e/ instead of slowing this folder."""

from __future__ import annotations

import multiprocessing.process
import platform
import subprocess
from typing import Any, NoReturn

import pytest
import uvicorn

# The standard library asks `uname -p` once per process for the processor name, which the
# engine's host facts include: asked here, before the guard, it is cached for the session.
platform.platform()


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> NoReturn:
            pytest.fail(f"a unit test started {what}: tests that start processes go in tests/e2e/")
        return refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("a subprocess"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse("a process"))
    monkeypatch.setattr(uvicorn.Server, "serve", refuse("a uvicorn server"))
