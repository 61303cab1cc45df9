"""The package's shape: no import cycles, core imports no outer layer, no module too long to read.

Module-level imports only (imports inside functions and ``if TYPE_CHECKING:`` blocks run later, or
never). Importing ``a.b.c`` also runs ``a`` and ``a.b``'s ``__init__``, so those count as edges too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chase_integrations"
ROOT = "chase_integrations"
OUTER = ("carbon", "forecast", "power", "simulation", "reporting", "cli", "lightning", "huggingface", "plain")
#: The one core module allowed to know the outer layers (it builds the objects from the arguments).
COMPOSITION = f"{ROOT}.core.compose"
MAX_LINES = 450
MAX_SESSION_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Import statements that run at import time (module body, including try/if blocks, not TYPE_CHECKING)."""
    found: list[ast.stmt] = []
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
    return found


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(MODULES)


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = _resolve(module, node)
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                if name == ROOT or name.startswith(ROOT + "."):
                    targets |= _with_parents(name)
        targets |= _with_parents(module) - {module}  # a module's own packages run first
        targets.discard(module)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _outside_parents(graph: dict[str, set[str]], module: str) -> set[str]:
    """Edges of ``module`` without the implicit ones to its own packages (a package imports its children)."""
    return {t for t in graph[module] if not module.startswith(t + ".")}


def test_no_import_cycles():
    graph = _edges()
    # a package's __init__ importing its own submodules, which import the package back, is how Python
    # packages work (the package is half-initialised but its parents are done); drop those edges
    pruned = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    assert _cycles(pruned) == []


def test_core_imports_no_outer_layer():
    graph = _edges()
    offenders = {}
    for module in MODULES:
        if not module.startswith(f"{ROOT}.core") or module == COMPOSITION:
            continue
        bad = sorted(t for t in _outside_parents(graph, module)
                     if any(t == f"{ROOT}.{o}" or t.startswith(f"{ROOT}.{o}.") for o in OUTER))
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_short_enough_to_read(module):
    lines = len(MODULES[module].read_text().splitlines())
    limit = MAX_SESSION_LINES if module == f"{ROOT}.core.session" else MAX_LINES
    assert lines <= limit, f"{module} has {lines} lines (at most {limit}): split it by what it owns"
