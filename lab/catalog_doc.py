"""The experiment catalog table of README.md and docs/experiments.md, made from experiments/*.toml.

Each row comes from one experiment file: its name (the file stem), ``[experiment]
question``, its variants' names with the sweep's parameter and levels and
``variants_note``, and ``[experiment] measured``. The documents hold the table between
``<!-- catalog:start -->`` and ``<!-- catalog:end -->``; the test suite checks that it is
exactly what this module makes, so the catalog cannot drift from the files.

Run ``python -m lab.catalog_doc --write`` from the repository's root after changing an
experiment file; ``--check`` only says which document is out of date (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.spec import Experiment, SpecError, SweepSpec, load_experiment

START = "<!-- catalog:start -->"
END = "<!-- catalog:end -->"
DOCUMENTS = ("README.md", "docs/experiments.md")
"""The files, relative to the repository's root, that hold the catalog table."""
COMMAND = "python -m lab.catalog_doc --write"
"""The command that rewrites the tables, named in every complaint about them."""

_HEADER = (
    "| name | question | variants | effect measured on the maintainers' machine |\n"
    "| --- | --- | --- | --- |\n"
)
_PARAMETER_LABELS = {"vus": "VUs", "rate": "rate (req/s)", "workers": "target workers",
                     "target.cpus": "target cores"}
_LEVELS_LISTED = 6
"""Sweeps with at most this many levels list them all; longer ones show first → last."""


class CatalogError(Exception):
    """A document has no catalog markers, or they are out of order."""


def _cell(text: str) -> str:
    """One table cell: a single line, with the pipes that would end the cell escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _number(value: float) -> str:
    return f"{value:g}"


def _sweep_text(sweep: SweepSpec) -> str:
    label = _PARAMETER_LABELS.get(sweep.parameter, sweep.parameter)
    levels = sweep.values()
    if len(levels) <= _LEVELS_LISTED:
        shown = ", ".join(_number(level) for level in levels)
    else:
        shown = f"{_number(levels[0])} → {_number(levels[-1])} ({len(levels)} levels)"
    return f"{label} swept {shown}"


def variants_text(experiment: Experiment) -> str:
    """The catalog's variants cell: names, the sweep, and the file's note in parentheses.

    Args:
        experiment: a validated experiment.

    Returns:
        e.g. ``no-cache, lru, redis (a lab-started redis-server)`` or
        ``scalable, contention, coherency; VUs swept 1 → 64 (7 levels)``; the note alone
        for an experiment with neither variants nor a sweep; ``default`` without a note.
    """
    parts = []
    if experiment.variants:
        parts.append(", ".join(variant.name for variant in experiment.variants))
    if experiment.sweep is not None:
        parts.append(_sweep_text(experiment.sweep))
    note = experiment.experiment.variants_note.strip()
    if not parts:
        return note or "default"
    text = "; ".join(parts)
    return f"{text} ({note})" if note else text


def catalog_table(experiments_dir: Path) -> str:
    """The catalog as a Markdown table, one row per ``*.toml`` file, sorted by name.

    Args:
        experiments_dir: the folder of experiment files.

    Returns:
        The table's lines, each ending in a newline.

    Raises:
        SpecError: a file is not a valid experiment (the one-line error names it).
    """
    rows = []
    for path in sorted(experiments_dir.glob("*.toml"), key=lambda path: path.stem):
        experiment = load_experiment(path)
        info = experiment.experiment
        cells = (experiment.name, info.question, variants_text(experiment), info.measured)
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |\n")
    return _HEADER + "".join(rows)


def with_table(document: str, table: str, name: str = "the document") -> str:
    """The document with the text between its catalog markers replaced by ``table``.

    Raises:
        CatalogError: the markers are missing, repeated or out of order.
    """
    if document.count(START) != 1 or document.count(END) != 1:
        raise CatalogError(f"{name}: needs exactly one {START} and one {END} line")
    head, rest = document.split(START, 1)
    _, tail = rest.split(END, 1)
    if END in head:
        raise CatalogError(f"{name}: {END} comes before {START}")
    return f"{head}{START}\n{table}{END}{tail}"


def stale_documents(root: Path) -> list[str]:
    """The catalog documents under ``root`` whose table is not what the files give.

    Raises:
        SpecError: an experiment file is invalid.
        CatalogError: a document lacks its markers.
    """
    table = catalog_table(root / "experiments")
    stale = []
    for name in DOCUMENTS:
        text = (root / name).read_text(encoding="utf-8")
        if with_table(text, table, name) != text:
            stale.append(name)
    return stale


def write_documents(root: Path) -> list[str]:
    """Rewrite the catalog table in every document under ``root``; returns those changed.

    Raises:
        SpecError: an experiment file is invalid (nothing is written).
        CatalogError: a document lacks its markers (nothing is written).
    """
    table = catalog_table(root / "experiments")
    # Every document is checked before any is written, so a missing marker leaves none half done.
    new_texts = {}
    for name in DOCUMENTS:
        text = (root / name).read_text(encoding="utf-8")
        new = with_table(text, table, name)
        if new != text:
            new_texts[name] = new
    for name, new in new_texts.items():
        (root / name).write_text(new, encoding="utf-8")
    return list(new_texts)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lab.catalog_doc [--write | --check] [--root DIR]``; prints the table by default."""
    parser = argparse.ArgumentParser(
        prog="python -m lab.catalog_doc",
        description="The experiment catalog table, made from experiments/*.toml.")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true",
                        help=f"rewrite the table in {' and '.join(DOCUMENTS)}")
    action.add_argument("--check", action="store_true",
                        help="exit 1 when a document's table differs from the files")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="the repository's root (default: the current directory)")
    args = parser.parse_args(argv)
    try:
        if args.write:
            for name in write_documents(args.root):
                print(f"rewrote the catalog in {name}")
            return 0
        if args.check:
            stale = stale_documents(args.root)
            for name in stale:
                print(f"{name}: the experiment catalog is out of date; run: {COMMAND}", file=sys.stderr)
            return 1 if stale else 0
        sys.stdout.write(catalog_table(args.root / "experiments"))
        return 0
    except (SpecError, CatalogError, OSError) as err:
        print(f"lab.catalog_doc: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
