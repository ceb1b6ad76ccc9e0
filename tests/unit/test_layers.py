"""The import graph of ``lab/``: no circle, and lower layers never import higher ones.

Every import counts, read from the source with ``ast``: module-level, inside functions,
under ``if TYPE_CHECKING:``; relative imports are resolved, ``from pkg import module``
is an edge to the module, and importing ``a.b.c`` from outside package ``a.b`` runs
``a/b/__init__.py`` first, so it is an edge to that package too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

LAB = REPO / "lab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(LAB.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _imported(name: str) -> Iterator[str]:
    """The lab modules ``name`` imports, as written (before adding parent packages)."""
    modules = _modules()
    path = modules[name]
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                yield f"{target}.{alias.name}"  # `from pkg import module`


def _edges(name: str) -> set[str]:
    modules = _modules()
    out = set()
    for target in _imported(name):
        if target not in modules or target == name:
            continue
        out.add(target)
        # Importing a.b.c from outside a.b runs a/b/__init__.py (never the root `lab`,
        # whose __init__ imports nothing of the lab's own).
        parts = target.split(".")
        for depth in range(2, len(parts)):
            parent = ".".join(parts[:depth])
            if not (name == parent or name.startswith(parent + ".")):
                out.add(parent)
    return out


@cache
def _graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(_edges(name)) for name in _modules()}


def _cycle() -> list[str] | None:
    """One import circle, as the modules along it (first = last), or None."""
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    """The walker itself: function-level, TYPE_CHECKING, relative and module imports."""
    graph = _graph()
    assert "lab.tui.app" in graph["lab.cli.ui"]  # imported inside the `tui` command only
    assert "lab.spec.models" in graph["lab.spec.loader"]
    assert "lab.store" in graph["lab.cli.common"]  # under TYPE_CHECKING and in functions
    assert len(graph) > 60


def test_no_import_circle() -> None:
    cycle = _cycle()
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def _reaches(name: str) -> set[str]:
    graph, seen, todo = _graph(), set(), [name]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# (importer, what it must never import): lower layers never import higher ones.
RULES = [
    ("lab.store", "lab.analysis"),
    ("lab.store", "lab.engine"),
    ("lab.store", "lab.report"),
    ("lab.store", "lab.cli"),
    ("lab.store", "lab.tui"),
    ("lab.engine", "lab.store"),
    ("lab.engine", "lab.report"),
    ("lab.engine", "lab.cli"),
    ("lab.engine", "lab.tui"),
    ("lab.load", "lab.engine"),
    ("lab.load", "lab.store"),
    ("lab.load", "lab.analysis"),
    ("lab.spec", "lab.store"),
    ("lab.spec", "lab.analysis"),
    ("lab.errors", "lab"),
    ("lab.figures", "lab"),
    ("lab.analysis", "lab.report"),
    ("lab.analysis", "lab.cli"),
    ("lab.analysis", "lab.tui"),
    ("lab.report", "lab.cli"),
    ("lab.report", "lab.tui"),
    # The session is the one path both front ends take: it knows neither, and nothing
    # below it (engine, store, analysis) knows it.
    ("lab.session", "lab.cli"),
    ("lab.session", "lab.tui"),
    ("lab.engine", "lab.session"),
    ("lab.store", "lab.session"),
    ("lab.analysis", "lab.session"),
]


@pytest.mark.parametrize(("low", "high"), RULES, ids=[f"{a}-not-{b}" for a, b in RULES])
def test_a_lower_layer_never_imports_a_higher_one(low: str, high: str) -> None:
    offenders = sorted(f"{name} → {target}" for name, targets in _graph().items() if _in(name, low)
                       for target in targets if _in(target, high) and not _in(target, low)
                       and not (high == "lab" and target == "lab"))
    assert offenders == []


@pytest.mark.parametrize("package", ["lab.tui", "lab.cli"])
def test_only_a_front_end_imports_itself(package: str) -> None:
    """Nothing outside lab/tui imports lab.tui but the CLI's tui/web commands; nothing
    outside lab/cli imports lab.cli but ``python -m lab``."""
    allowed = {"lab.tui": {"lab.cli.ui"}, "lab.cli": {"lab.__main__"}}[package]
    offenders = sorted(f"{name} → {target}" for name, targets in _graph().items()
                       if not _in(name, package) and name not in allowed
                       for target in targets if _in(target, package))
    assert offenders == []


def test_only_the_store_speaks_sql() -> None:
    offenders = []
    for name, path in _modules().items():
        if _in(name, "lab.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{name} → {n}" for n in names if n.split(".")[0] in ("sqlite3", "sqlite_utils")]
    assert offenders == []


def test_the_engine_needs_neither_the_store_nor_a_front_end() -> None:
    reached = _reaches("lab.engine")
    assert not {m for m in reached if _in(m, "lab.store") or _in(m, "lab.tui") or _in(m, "lab.cli")}
