"""Pre-flight checks of an experiment's code: whether the target's app imports (in a
subprocess, so its import side effects stay out of the lab) and whether a module can be
found where its process will look (without running any of its code).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from lab.errors import SpecError
from lab.spec.models import TargetSpec
from lab.spec.wording import located_error

_IMPORT_CHECK = """\
import importlib, os, sys
sys.path.insert(0, os.getcwd())
module_name, _, attributes = sys.argv[1].partition(":")
obj = importlib.import_module(module_name)
for attribute in attributes.split("."):
    obj = getattr(obj, attribute)
if not callable(obj):
    sys.exit(f"TypeError: {sys.argv[1]} is {type(obj).__name__}, not an ASGI app")
import inspect
call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else getattr(obj, "__call__", obj)
if inspect.isclass(obj) or not inspect.iscoroutinefunction(call):
    sys.exit(f"TypeError: {sys.argv[1]} is not an ASGI app (uvicorn needs an "
             "'async def app(scope, receive, send)' or an object whose __call__ is async)")
"""
_IMPORT_TIMEOUT_S = 30.0
_importable: set[tuple[str, str]] = set()


def check_target_importable(target: TargetSpec, path: str) -> None:
    """Check that an ``app`` target imports, without importing it into the lab.

    The import runs in a subprocess (``sys.executable``) with ``app_dir`` (or the current
    directory) as cwd and ``target.env`` added to the environment, so the app's import
    side effects stay out of the lab's process. Successes are cached per (app, directory)
    for the life of the process; failures are not, so a fixed module passes next time.
    Does nothing for ``url`` targets.

    Args:
        target: the (resolved) target.
        path: the experiment file, for the error's location.

    Raises:
        SpecError: field ``target.app`` (or ``target.app_dir``) when the module or the
            attribute cannot be imported within 30 s; the message carries the last line
            of the import's error output.
    """
    if target.app is None:
        return
    workdir = Path(target.app_dir) if target.app_dir else Path.cwd()
    key = (target.app, str(workdir.resolve()))
    if key in _importable:
        return

    def fail(field: str, message: str) -> SpecError:
        return located_error(path, tuple(field.split(".")), message)

    if not workdir.is_dir():
        raise fail("target.app_dir", f"no such directory: {str(workdir)!r}")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _IMPORT_CHECK, target.app],
            cwd=workdir,
            env={**os.environ, **target.env},
            capture_output=True,
            text=True,
            timeout=_IMPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise fail(
            "target.app", f"cannot import {target.app!r}: timed out after {_IMPORT_TIMEOUT_S:g} s"
        ) from None
    except OSError as exc:
        raise fail("target.app", f"cannot import {target.app!r}: {exc}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise fail("target.app", f"cannot import {target.app!r}: {reason}")
    _importable.add(key)


def module_problem(app: str, app_dir: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """Why the module of ``app`` (``module.path:attribute``) cannot be found, or None.

    Looks the module up the way the uvicorn process the lab starts will: ``app_dir`` (or
    the current directory) first, then the current directory, ``PYTHONPATH`` (the
    process's own ``env`` wins over the lab's), then the lab's own ``sys.path`` (same
    interpreter, same site-packages). Only finders are asked, level by level, so no code
    of the app or of its packages runs in the lab. The attribute is not checked: that
    needs the import.

    Returns:
        Python's own wording, e.g. ``No module named 'targets.nope'``; None when found.
    """
    module = app.partition(":")[0]
    cwd = os.getcwd()
    pythonpath = (env or {}).get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    search = [str(Path(cwd, app_dir)) if app_dir else cwd, cwd,
              *(p for p in pythonpath.split(os.pathsep) if p), *sys.path]
    parts = module.split(".")
    found = importlib.machinery.PathFinder.find_spec(parts[0], search)
    if found is None:
        # Built-in modules and editable installs are found by the other finders on
        # sys.meta_path; for a top-level name that asks them without importing anything.
        try:
            found = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            found = None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if found is None:
            return f"No module named {name!r}"
        if depth == len(parts):
            return None
        locations = found.submodule_search_locations
        if locations is None:
            return f"No module named {'.'.join(parts[:depth + 1])!r}; {name!r} is not a package"
        found = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth + 1]), list(locations))
    return None
