"""No import cycles among sftkit's modules, read statically from the source (nothing is imported).

Three graphs: the module-level imports of the whole package must be acyclic (a cycle there breaks
at import time depending on which module comes first); counting function-level (lazy) imports too,
as written, no cycle either: a lazy import that closes a loop hides a design knot (``api -> config
-> core_schema -> api``, ``plugins <-> cli``, ``plan <-> run.stages``, ``validate <->
modeling.loaders`` were such knots) instead of deferring a heavy library; and within one package,
or along the read -> check -> resolve line, not even the ``__init__`` an import runs first may close
a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sftkit"
# the recipe's straight line, checked as one group (they are top-level modules, not a package)
RECIPE_LINE = {"sftkit.recipe", "sftkit.schema", "sftkit.core_schema", "sftkit.validate", "sftkit.config",
               "sftkit.reading", "sftkit.errors", "sftkit.tomlpos", "sftkit.paths", "sftkit.registry",
               "sftkit.detect"}


# Function-local sftkit -> sftkit imports allowed to close a loop, each only to defer a heavy library:
# (importer, imported) -> the reason. Empty: every lazy sftkit import points down the layers.
LAZY_EDGES_ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(module: str, is_package: bool, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" for a in node.names]  # a submodule, or a name of ``prefix``


def _statements(tree: ast.Module, lazy: bool):
    if lazy:
        yield from (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        return
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        body = node.body + node.orelse if isinstance(node, ast.If) else \
            node.body + [s for h in node.handlers for s in h.body] if isinstance(node, ast.Try) else [node]
        yield from (n for n in body if isinstance(n, (ast.Import, ast.ImportFrom)))


def import_graph(lazy: bool, parents: bool = True) -> dict[str, set[str]]:
    """module -> sftkit modules it imports (at module level, or anywhere when ``lazy``); with
    ``parents``, also the packages whose ``__init__`` such an import runs first."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _statements(tree, lazy):
            for name in _targets(module, path.name == "__init__.py", node):
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != module and name.startswith("sftkit"):
                    deps.add(name)
        # importing a.b.c runs a.b's __init__ first (unless the importer is inside a.b)
        for dep in list(deps) if parents else ():
            parent = dep.rpartition(".")[0]
            while parent:
                if parent in modules and not module.startswith(parent + "."):
                    deps.add(parent)
                parent = parent.rpartition(".")[0]
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _group(module: str) -> str:
    return "recipe line" if module in RECIPE_LINE else ".".join(module.split(".")[:2])


def test_module_level_imports_have_no_cycle():
    graph = import_graph(lazy=False)
    assert "sftkit.reading" in graph["sftkit.recipe"]  # the graph is real (recipe.py: from .reading import ...)
    assert cycles(graph) == []


def test_no_cycle_inside_a_package_or_the_recipe_line_even_through_lazy_imports():
    graph = import_graph(lazy=True)
    inside = {m: {d for d in deps if _group(d) == _group(m)} for m, deps in graph.items()}
    assert cycles(inside) == []


def test_no_cycle_counting_function_local_imports():
    graph = import_graph(lazy=True, parents=False)
    assert "sftkit.plan" in graph["sftkit.run.stages"]  # lazy imports are counted (stages: from sftkit.plan import ...)
    for importer, imported in LAZY_EDGES_ALLOWED:
        assert imported in graph[importer], f"{importer} -> {imported} is gone: drop it from LAZY_EDGES_ALLOWED"
        graph[importer].discard(imported)
    assert cycles(graph) == []


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
