"""What importing a module loads, in a fresh interpreter (harlequin's test in spirit): no
module outside the front ends loads Textual, and the engine loads neither the store nor
SQLite. tests/unit/test_layers.py reads the same rules from the source; this proves them
at run time, lazy imports and third-party packages included."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO
from tests.unit.test_layers import _in, _modules

_LOADED = ("import importlib, json, sys\n"
           "for name in sys.argv[1:]:\n"
           "    importlib.import_module(name)\n"
           "print(json.dumps(sorted(sys.modules)))\n")


def _loaded_by(*modules: str) -> set[str]:
    """Every module in ``sys.modules`` after importing ``modules`` in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", _LOADED, *modules], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return set(json.loads(res.stdout))


def _textual(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m.split(".")[0] in ("textual", "textual_plotext", "textual_serve")}


def test_no_module_outside_the_front_ends_loads_textual() -> None:
    headless = [name for name in _modules() if not (_in(name, "lab.tui") or _in(name, "lab.cli"))
                and name != "lab.__main__"]
    assert len(headless) > 40
    # All at once: none loads Textual unless one of them does; then name the ones that do.
    if _textual(_loaded_by(*headless)):
        offenders = [name for name in headless if _textual(_loaded_by(name))]
        assert offenders == []


def test_the_engine_loads_neither_the_store_nor_sqlite_nor_textual() -> None:
    loaded = _loaded_by("lab.engine")
    assert "lab.engine" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("sqlite_utils", "sqlite3", "_sqlite3")}
    assert not {m for m in loaded if _in(m, "lab.store")}
    assert not _textual(loaded)


def test_the_command_line_loads_textual_only_for_the_tui() -> None:
    loaded = _loaded_by("lab.cli")
    assert "lab.cli.run" in loaded and not _textual(loaded)


def test_a_generator_worker_loads_httpx_only_for_the_httpx_engine() -> None:
    # A worker starts with every run (and sweep level); the fast engine, the one loopback
    # targets get, needs none of httpx, whose import is a quarter of the worker's start.
    assert not {m for m in _loaded_by("lab.load.worker") if m.split(".")[0] == "httpx"}
    assert "httpx" in _loaded_by("lab.load.worker", "lab.load.httpx_engine")
