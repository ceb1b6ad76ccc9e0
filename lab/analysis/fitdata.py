"""Read (concurrency, throughput) measurements from a CSV file for ``lab fit``.

The file needs a header row naming a concurrency column and a throughput column
(case-insensitive; common synonyms such as ``vus``, ``workers``, ``rps`` are accepted, and a
unit in brackets such as ``throughput (req/s)`` is ignored). Other columns are ignored.
Commas are the separator; a header with semicolons or tabs and no commas uses those.
Blank lines and lines starting with ``#`` are skipped.

Every problem is a :class:`FitDataError` whose text is one line, ``path:line: column: message``,
in the style of :class:`lab.spec.SpecError`.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import NamedTuple

from lab.analysis.usl import MIN_LEVELS

CONCURRENCY_NAMES: tuple[str, ...] = (
    "concurrency", "n", "vus", "vu", "users", "workers", "threads", "clients", "connections",
    "processes", "nodes", "cores", "cpus", "level", "parallelism",
)
"""Accepted names of the concurrency column, in order of preference."""

THROUGHPUT_NAMES: tuple[str, ...] = (
    "throughput", "x", "rps", "throughput_rps", "req/s", "reqs/s", "requests/s", "req_per_s",
    "requests_per_second", "goodput", "goodput_rps", "tps", "qps", "ops", "ops/s", "ops_per_s",
)
"""Accepted names of the throughput column, in order of preference."""


class FitDataError(ValueError):
    """A problem with a fit's CSV file; ``str(err)`` is one line: ``path:line: column: message``.

    Attributes:
        path: the file as the user named it.
        line: 1-based line in the file (None when no single line is at fault).
        column: the column's name as written in the header, or None.
        message: what is wrong.
    """

    def __init__(self, path: str | Path, line: int | None, column: str | None, message: str) -> None:
        super().__init__(str(path), line, column, message)
        self.path = str(path)
        self.line = line
        self.column = column
        self.message = message

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        body = f"column {self.column!r}: {self.message}" if self.column else self.message
        return re.sub(r"\s*[\r\n]+\s*", " ", f"{where}: {body}")


class FitData(NamedTuple):
    """The measurements, in file order; unpacks as ``concurrency, throughput``."""

    concurrency: list[float]
    """N per row (positive)."""
    throughput: list[float]
    """X per row (non-negative), in the file's unit (req/s, ops/s…)."""


def _normalise(name: str) -> str:
    """``" Throughput (req/s) "`` → ``"throughput"``; ``"Throughput RPS"`` → ``"throughput_rps"``."""
    name = name.strip().lstrip("\ufeff").strip().lower()
    name = re.sub(r"\s*[(\[].*?[)\]]\s*$", "", name)  # a trailing unit: "(req/s)", "[ops/s]"
    return re.sub(r"[\s\-]+", "_", name.strip())


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    """Index of the header cell matching the most preferred of ``names``, or None."""
    normalised = [_normalise(h) for h in header]
    for name in names:
        if name in normalised:
            return normalised.index(name)
    return None


def _number(path: str, line: int, column: str, cell: str, what: str) -> float:
    """One cell as a finite, non-negative float (positive for concurrency)."""
    text = cell.strip()
    if not text:
        raise FitDataError(path, line, column, "empty cell, expected a number")
    try:
        value = float(text)
    except ValueError:
        raise FitDataError(path, line, column, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise FitDataError(path, line, column, f"{text!r} is not a finite number")
    if value < 0:
        raise FitDataError(path, line, column, f"negative {what} {text}: must be ≥ 0")
    if value == 0 and what == "concurrency":
        raise FitDataError(path, line, column, "concurrency 0: must be positive")
    return value


def read_fit_csv(path: str | Path) -> FitData:
    """Read the concurrency and throughput columns of a CSV file.

    Args:
        path: the CSV file.

    Returns:
        Two lists of equal length k ≥ 6 (at least 6 distinct concurrency levels): N and X.

    Raises:
        FitDataError: an unreadable or empty file, a missing column, an empty, non-numeric,
            non-finite or negative cell, zero concurrency, fewer than 6 levels, or
            constant throughput; one line naming the file, the line and the column.
    """
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FitDataError(shown, None, None, "file not found") from None
    except IsADirectoryError:
        raise FitDataError(shown, None, None, "is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise FitDataError(shown, None, None, "cannot read file: not UTF-8 text") from None
    except OSError as exc:
        raise FitDataError(shown, None, None, f"cannot read file: {exc.strerror or exc}") from None

    rows = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise FitDataError(shown, 1, None, "empty file: expected a header such as 'concurrency,throughput'")
    header_line, header_text = rows[0]
    delimiter = ","
    if "," not in header_text:
        delimiter = ";" if ";" in header_text else ("\t" if "\t" in header_text else ",")
    header = next(csv.reader([header_text], delimiter=delimiter))
    n_col = _pick(header, CONCURRENCY_NAMES)
    x_col = _pick(header, THROUGHPUT_NAMES)
    found = ", ".join(repr(h.strip()) for h in header)
    if n_col is None:
        raise FitDataError(shown, header_line, None,
                           f"no concurrency column in the header (found {found}; expected one of: "
                           f"{', '.join(CONCURRENCY_NAMES)})")
    if x_col is None:
        raise FitDataError(shown, header_line, None,
                           f"no throughput column in the header (found {found}; expected one of: "
                           f"{', '.join(THROUGHPUT_NAMES)})")
    n_name, x_name = header[n_col].strip(), header[x_col].strip()

    concurrency: list[float] = []
    throughput: list[float] = []
    data_lines: list[int] = []
    for line_no, line in rows[1:]:
        cells = next(csv.reader([line], delimiter=delimiter))
        for col, name in ((n_col, n_name), (x_col, x_name)):
            if col >= len(cells):
                raise FitDataError(shown, line_no, name, f"missing value (the row has {len(cells)} "
                                                         f"cells, the header {len(header)})")
        concurrency.append(_number(shown, line_no, n_name, cells[n_col], "concurrency"))
        throughput.append(_number(shown, line_no, x_name, cells[x_col], "throughput"))
        data_lines.append(line_no)

    if not data_lines:
        raise FitDataError(shown, header_line + 1, None,
                           f"no data rows after the header: a fit needs at least {MIN_LEVELS} levels, got 0")
    levels = len(set(concurrency))
    if levels < MIN_LEVELS:
        raise FitDataError(shown, data_lines[-1], n_name,
                           f"a fit needs at least {MIN_LEVELS} levels, got {levels}")
    if max(throughput) - min(throughput) <= 1e-12 * max(abs(v) for v in throughput):
        raise FitDataError(shown, data_lines[0], x_name,
                           f"throughput is constant ({throughput[0]:g} on every row, lines "
                           f"{data_lines[0]}–{data_lines[-1]}): there is nothing to fit")
    return FitData(concurrency, throughput)
