"""The exercise engine's modules import each other one way: no cycle, not even a lazy one.

A cycle hidden in a function-level import (notebook -> widgets -> notebook) works until the day
someone moves an import to the top; the graph below counts every import, wherever it stands.
"""
from __future__ import annotations

import ast
from pathlib import Path

import tlcourse.exercises

PACKAGE = Path(tlcourse.exercises.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports, at the top or inside functions."""
    name = _module_name(path)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                found |= {m for m in (f"{target}.{alias.name}", target) if m in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found - {name}


def test_no_import_cycle_in_the_exercise_engine():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, set(paths)) for name, path in paths.items()}
    assert "tlcourse.exercises.widgets" in graph["tlcourse.exercises.notebook"]  # the scan sees imports

    done: set[str] = set()  # modules whose imports are known to lead to no cycle

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[node] - done):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            found = cycle_from(nxt, path + [nxt])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = cycle_from(start, [start])
        assert cycle is None, " -> ".join(cycle)
