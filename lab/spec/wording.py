"""How an experiment file's problems are worded: pydantic's errors turned into one line,
``path:line: field.path: message``, with the line found in the TOML text.

Models raise `FieldError` from a model-level check to blame one field; `describe_error`
turns one pydantic error into that field's path and a message a workshop attendee can act
on; `find_line` guesses the line of a field path in the file.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from lab.errors import SpecError


class FieldError(ValueError):
    """A ValueError raised from a model-level check that belongs to one field.

    Model validators report at the model's own location; ``loc`` lets the message point
    at the field that is actually wrong (and so at its line in the file).
    """

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc



def show_value(value: object) -> str:
    """A short, one-line rendering of a user value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."





def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional so the walker sees the container or model type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _clean_loc(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Any]]:
    """Drop pydantic's internal loc parts (union member tags, ``[key]``).

    Returns:
        The cleaned loc, and the type of the value at each prefix of it (``types[0]`` is
        ``root``, ``types[i]`` the type at ``loc[:i]``); ``Any`` where unknown.
    """
    out: list[Any] = []
    kinds: list[Any] = [root]
    current: Any = root
    for part in loc:
        tp = _unwrap(current)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if isinstance(part, int):
            current = args[0] if origin is list and args else Any
        elif part == "[key]":
            continue
        elif _is_model(tp):
            field = tp.model_fields.get(part)
            current = field.annotation if field is not None else Any
        elif origin is dict:
            current = args[1] if len(args) == 2 else Any
        elif tp is Any:
            current = Any
        else:
            # A union member or validator tag such as 'str' or 'function-after[...]'.
            current = Any
            continue
        out.append(part)
        kinds.append(current)
    return tuple(out), kinds


def dotted_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            text += f".{key}" if text else key
    return text


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_COMPARISONS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _bounds_text(kinds: list[Any], loc: tuple[Any, ...]) -> str:
    """The range a model field's number must lie in, as `` > 0 and <= 1000000``; empty for
    a field without bounds or a value that is not a model field (a list item)."""
    parent = _unwrap(kinds[-2]) if len(kinds) >= 2 else None
    if not loc or not isinstance(loc[-1], str) or not _is_model(parent):
        return ""
    field = parent.model_fields.get(loc[-1])
    parts: list[str] = []
    for item in field.metadata if field is not None else ():
        for key, symbol in _COMPARISONS.values():
            limit = getattr(item, key, None)
            if isinstance(limit, int | float):
                parts.append(f"{symbol} {_number_text(limit)}")
    return " " + " and ".join(parts) if parts else ""


def _number_text(limit: float) -> str:
    # "1e+06" would hide a limit of a million: whole numbers are shown in full.
    if isinstance(limit, float):
        return f"{int(limit)}" if limit.is_integer() else f"{limit:g}"
    return str(limit)


def describe_error(err: Any, root: type[BaseModel]) -> tuple[tuple[Any, ...], str]:
    """Turn one pydantic error dict into (field loc, human message)."""
    loc, kinds = _clean_loc(root, tuple(err.get("loc", ())))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")

    if kind in ("value_error", "assertion_error"):
        exc = ctx.get("error")
        if isinstance(exc, FieldError):
            return (*loc, *exc.loc), str(exc)
        message = str(exc) if exc is not None else str(err.get("msg", ""))
        return loc, re.sub(r"^(Value|Assertion) error, ", "", message)
    if kind == "extra_forbidden":
        parent = _unwrap(kinds[-2]) if len(kinds) >= 2 else Any
        if _is_model(parent):
            return loc, f"unknown field; allowed: {', '.join(parent.model_fields)}"
        return loc, "unknown field"
    if kind == "missing":
        here = _unwrap(kinds[-1])
        if _is_model(here) and len(loc) == 1:
            return loc, f"missing [{dotted_path(loc)}] section"
        inner = typing.get_args(here)
        if typing.get_origin(here) is list and inner and _is_model(_unwrap(inner[0])):
            return loc, f"required; add at least one [[{dotted_path(loc)}]] table"
        return loc, "required field missing"
    if kind == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        what = loc[-1] if loc and isinstance(loc[-1], str) else "value"
        return loc, f"unknown {what} {show_value(value)}; allowed: {allowed}"
    if kind in _COMPARISONS:
        key, symbol = _COMPARISONS[kind]
        limit = ctx.get(key)
        shown = _number_text(limit) if isinstance(limit, int | float) else limit
        return loc, f"must be {symbol} {shown} (got {show_value(value)})"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return loc, "must not be empty"
        return loc, f"needs at least {ctx.get('min_length')} items"
    if kind == "string_too_short":
        return loc, "must not be empty"
    if kind in _TYPE_WORDS:
        return loc, f"must be {_TYPE_WORDS[kind]} (got {show_value(value)})"
    if kind == "finite_number":
        bounds = _bounds_text(kinds, loc)
        return loc, f"must be a finite number{bounds} (got {show_value(value)})"
    message = str(err.get("msg", "invalid value"))
    return loc, message[:1].lower() + message[1:]


def spec_error_from(
    exc: ValidationError, path: str, source: str | None, root: type[BaseModel]
) -> SpecError:
    loc, message = describe_error(exc.errors()[0], root)
    line = find_line(source, loc) if source is not None else None
    return SpecError(path, line, dotted_path(loc) or None, message)


# ----------------------------------------------------------- line-number heuristics

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", key)
    return tuple(p.strip().strip("\"'") for p in parts if p.strip())


def _key_pattern(keys: list[str]) -> re.Pattern[str]:
    alternatives = [f"(?:{re.escape(k)}|\"{re.escape(k)}\"|'{re.escape(k)}')" for k in keys]
    return re.compile(r"^\s*" + r"\s*\.\s*".join(alternatives) + r"\s*[=.]")


def find_line(source: str, loc: tuple[Any, ...]) -> int | None:
    """Best-guess 1-based line for a field path in TOML text.

    Finds the deepest ``[table]`` / ``[[array.table]]`` header matching a prefix of the
    path (counting occurrences of array tables to match list indexes), then the first
    ``key =`` or dotted ``key.sub =`` line for the rest of the path before the next
    header. Falls back to the header's line, then None.
    """
    segments: list[tuple[str, int | None]] = []
    for part in loc:
        if isinstance(part, int):
            if segments and segments[-1][1] is None:
                segments[-1] = (segments[-1][0], part)
        else:
            segments.append((str(part), None))

    lines = source.splitlines()
    headers: list[tuple[int, int]] = []  # (line index, matched depth)
    counters: dict[tuple[str, ...], int] = {}
    quoted: set[int] = set()  # lines that start inside a multi-line string
    in_string: str | None = None
    for index, text in enumerate(lines):
        if in_string is not None:
            quoted.add(index)
        for quote in ('"""', "'''"):
            if in_string in (None, quote) and text.count(quote) % 2 == 1:
                in_string = None if in_string == quote else quote
        # A description may well contain a line like "[x]": it is not a header.
        if index in quoted:
            continue
        match = _HEADER_RE.match(text)
        if not match:
            continue
        name = _split_key(match.group(2))
        if match.group(1) == "[[":
            counters[name] = counters.get(name, -1) + 1
            for other in list(counters):
                if len(other) > len(name) and other[: len(name)] == name:
                    del counters[other]
        depth = 0
        if len(name) <= len(segments) and all(
            name[j] == segments[j][0]
            and (segments[j][1] is None or counters.get(name[: j + 1]) == segments[j][1])
            for j in range(len(name))
        ):
            depth = len(name)
        headers.append((index, depth))

    best_index, best_depth = -1, 0
    for index, depth in headers:
        if depth > best_depth:
            best_index, best_depth = index, depth

    region_end = next((i for i, _ in headers if i > best_index), len(lines))
    rest = [key for key, _ in segments[best_depth:]]
    for size in range(len(rest), 0, -1):
        pattern = _key_pattern(rest[:size])
        for index in range(best_index + 1, region_end):
            if index not in quoted and pattern.match(lines[index]):
                return index + 1
    return best_index + 1 if best_index >= 0 else None



def located_error(path: str | Path, loc: tuple[str | int, ...], message: str) -> SpecError:
    """A `SpecError` for the field at ``loc`` of the file at ``path``, with its line
    when the file can be read (for checks made after loading, such as importability)."""
    try:
        line = find_line(Path(path).read_text(encoding="utf-8"), loc)
    except (OSError, UnicodeDecodeError):
        line = None
    return SpecError(path, line, dotted_path(loc) or None, message)


