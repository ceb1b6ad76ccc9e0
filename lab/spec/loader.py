"""Reading experiment files: find one by name or path, load and validate it (``SpecError``
naming the file, line and field on any problem).
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from pathlib import Path

from pydantic import (
    ValidationError,
)

from lab.errors import SpecError
from lab.spec.models import Experiment
from lab.spec.wording import spec_error_from


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file, every resolved variant included.

    Does not import or start the target (see `check_target_importable`).

    Args:
        path: the TOML file.

    Returns:
        The experiment, with ``name`` (file stem) and ``source`` (the path) set.

    Raises:
        SpecError: the file is missing or unreadable, is not valid TOML, or does not
            describe a valid experiment (unknown or missing fields, wrong types, bad
            durations, unknown distributions, bad variant overrides, ...).
    """
    file = Path(path)
    shown = str(path)
    try:
        file.stem.encode("utf-8")
    except UnicodeEncodeError:
        # The name is the experiment's, stored with every run as text: bytes that are not
        # UTF-8 could not be stored (nor typed back to find the runs).
        readable = shown.encode("utf-8", "backslashreplace").decode("utf-8")
        raise SpecError(readable, None, None, "the file name is not valid UTF-8; rename the file "
                        "(its name is the experiment's name)") from None
    try:
        source = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(shown, None, None, "file not found") from None
    except IsADirectoryError:
        raise SpecError(shown, None, None, "is a directory, not an experiment file") from None
    except UnicodeDecodeError:
        raise SpecError(shown, None, None, "cannot read file: not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(shown, None, None, f"cannot read file: {exc.strerror or exc}") from None

    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        position = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if position:
            line = int(position.group(1))
            message = message.replace(position.group(0), f" (column {position.group(2)})")
        elif "(at end of document)" in message:
            line = max(len(source.splitlines()), 1)
            message = message.replace(" (at end of document)", " (at end of file)")
        raise SpecError(shown, line, None, f"invalid TOML: {message}") from None

    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc, shown, source, Experiment) from None
    experiment.name = file.stem
    experiment.source = file
    return experiment


EXPERIMENTS_ENV = "LAB_EXPERIMENTS"
"""A folder ``lab run NAME`` also looks in for ``NAME.toml``."""


def experiment_dirs(db_path: str | Path | None = None) -> list[tuple[Path, str]]:
    """Where else ``lab run NAME`` looks, after ``--experiments``: ``$LAB_EXPERIMENTS``,
    then beside the results database in use (its ``experiments/`` folder, then its own
    folder), so a lab kept in one folder runs from anywhere.

    Returns:
        ``(folder, why it is looked in)`` pairs, in order.
    """
    dirs: list[tuple[Path, str]] = []
    env = os.environ.get(EXPERIMENTS_ENV)
    if env:
        dirs.append((Path(env), f"${EXPERIMENTS_ENV}"))
    if db_path is not None and str(db_path):
        folder = Path(db_path).parent
        dirs += [(folder / "experiments", f"beside {db_path}"), (folder, f"beside {db_path}")]
    return dirs


def find_experiment(name_or_path: str, experiments_dir: Path = Path("experiments"),
                    more_dirs: typing.Sequence[tuple[Path, str]] = ()) -> Path:
    """Find an experiment file by path or by name.

    Args:
        name_or_path: an existing file path, or a name such as ``caching`` looked up as
            ``caching.toml`` in ``experiments_dir``, then in each of ``more_dirs``.
        experiments_dir: where named experiments live first (``--experiments``).
        more_dirs: further folders, each with why it is looked in (``experiment_dirs``).

    Returns:
        The file's path.

    Raises:
        SpecError: nothing matches; the message says where it looked and lists the
            experiment names found there.
    """
    given = Path(name_or_path)
    if given.is_file():
        return given
    if given.is_dir():
        raise SpecError(name_or_path, None, None, "is a directory, not an experiment file")
    places: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for folder, why in [(experiments_dir, ""), *more_dirs]:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            places.append((folder, why))
    names = [f"{name_or_path}.toml"] + ([name_or_path] if name_or_path.endswith(".toml") else [])
    for folder, _why in places:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    known = sorted({p.stem for folder, _why in places if folder.is_dir() for p in folder.glob("*.toml")})
    groups: list[tuple[str, list[str]]] = []
    for folder, why in places:
        if groups and groups[-1][0] == why:
            groups[-1][1].append(f"{folder}/")
        else:
            groups.append((why, [f"{folder}/"]))
    looked = ", ".join(" and ".join(shown) + (f" ({why})" if why else "") for why, shown in groups)
    found = f"known experiments: {', '.join(known)}" if known else "no experiments found there"
    raise SpecError(name_or_path, None, None, f"no such experiment file (looked in {looked}); {found}")


