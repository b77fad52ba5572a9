"""Layers point one way: no import cycles in ``src/kogpt2`` and no private names imported across modules.

The graph is built from the source with :mod:`ast`, counting module-level and function-level
imports alike (a lazy import still ties two modules together).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "kogpt2"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in the file."""
    out: list[tuple[str, str | None]] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None) if sub in known else (base, a.name))
    return [(m, n) for m, n in out if m == "kogpt2" or m.startswith("kogpt2.")]


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {m for m, _ in imports_of(name, path, set(mods)) if m in mods and m != name}
            for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "kogpt2.checkpoint" in graph["kogpt2.train"]  # a function-level import
    assert "kogpt2.finetune.task" in graph["kogpt2.finetune"]  # the package re-exports it


def test_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles():
    cycles = [c for c in find_cycles(import_graph())]
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_no_private_names_imported_across_modules():
    mods = modules()
    bad = [(name, m, n) for name, path in mods.items() for m, n in imports_of(name, path, set(mods))
           if n and n.startswith("_") and not n.startswith("__") and m != name]
    assert not bad, "private names imported from another module: " + ", ".join(f"{a} imports {b}.{c}" for a, b, c in bad)


def test_command_modules_do_not_import_each_other():
    from kogpt2.cli import COMMANDS

    commands = {module for module, _ in COMMANDS.values()}
    graph = import_graph()
    bad = sorted((c, m) for c in commands for m in graph[c] & commands)
    assert not bad, f"command modules importing other commands (move the shared code into the library): {bad}"


def test_no_unused_imports_or_undefined_names():
    """Pyflakes' rules (ruff ``F``) over the package, tests and benchmarks: unused imports, undefined names."""
    pytest.importorskip("ruff")  # a dev dependency: `make test` installs it
    root = SRC.parents[1]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F", "--output-format",
                           "concise", "src", "tests", "benchmarks"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
