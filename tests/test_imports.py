"""No import cycle between the modules of neuroexec, nor between its packages.

The graph is read from the source with ``ast``, so it holds every ``import`` and ``from ... import`` of a
neuroexec module wherever it is written: at module level, inside a function (a lazy import that only
postpones a cycle is still a cycle in the design) or under ``if TYPE_CHECKING``. Importing a submodule
does not count as importing its package's ``__init__`` (Python runs it, but that edge is not a design
dependency); ``from neuroexec.pkg import name`` of a name defined in ``pkg/__init__.py`` does count.
A module named by a string and loaded with ``importlib`` is no edge: that is how the engine loads the
step kinds as plug-ins (``plan/registry.py``'s ``STEP_MODULES``), without depending on their code.

The package graph has one node per subpackage (``cli``, ``compat``, ``data``, ...) and one per top-level
module (``executor``, ``context``, ...); an import between two modules of the same package is no edge.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import neuroexec

ROOT = Path(neuroexec.__file__).resolve().parent
PACKAGE = "neuroexec"

# an edge's evidence: the file and line of the import statement
Edges = dict[str, dict[str, list[str]]]


def module_name(path: Path) -> str:
    """``neuroexec/steps/train.py`` -> ``neuroexec.steps.train``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _absolute(base: str, level: int, is_package: bool) -> str:
    """The package a relative import of ``level`` dots in module ``base`` starts from."""
    parts = base.split(".")
    if not is_package:
        parts.pop()
    return ".".join(parts[: len(parts) - (level - 1)] if level > 1 else parts)


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """The neuroexec modules that module ``name`` imports, each with the line of its import."""
    found: list[tuple[str, int]] = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                start = _absolute(name, node.level, path.name == "__init__.py")
                source = f"{start}.{node.module}" if node.module else start
            else:
                source = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import neuroexec.a.b` of a missing b: nearest
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.append((target, node.lineno))
    return found


def module_graph() -> Edges:
    modules = all_modules()
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for name, path in modules.items():
        for target, line in imported_modules(name, path, modules):
            edges[name][target].append(f"{path.relative_to(ROOT.parent)}:{line}")
    return edges


def package_of(module: str) -> str:
    """``neuroexec.steps.train`` -> ``neuroexec.steps``; a top-level module is its own node."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_graph(modules: Edges) -> Edges:
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for source, targets in modules.items():
        for target, where in targets.items():
            a, b = package_of(source), package_of(target)
            if a != b:
                edges[a][b].extend(f"{w} ({source} -> {target})" for w in where)
    return edges


def strongly_connected(edges: Edges) -> list[list[str]]:
    """Tarjan's components of more than one node: each is a set of nodes that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, {})):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    nodes = set(edges) | {t for targets in edges.values() for t in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def shortest_cycle(edges: Edges, component: list[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside ``component`` (breadth first)."""
    members = set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, {})):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


def describe(edges: Edges) -> str:
    """Every component and, for each of its members, one shortest cycle through it with its imports."""
    lines = []
    for component in strongly_connected(edges):
        lines.append(f"cycle among {len(component)}: {', '.join(component)}")
        seen: set[tuple[str, ...]] = set()
        for member in component:
            cycle = shortest_cycle(edges, component, member)
            key = tuple(sorted(zip(cycle, cycle[1:])))
            if key in seen:
                continue
            seen.add(key)
            lines.append("  " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:]):
                lines.append(f"      {a} -> {b}: {'; '.join(list(dict.fromkeys(edges[a][b]))[:3])}")
    return "\n".join(lines)


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The reader finds a function-level import, resolves `from . import x` and `from pkg import name`."""
    modules = all_modules()
    assert "neuroexec.steps.train" in modules and "neuroexec.steps" in modules
    source = tmp_path / "__init__.py"
    source.write_text(
        "from . import train\n"
        "from .common import x\n"
        "from neuroexec.maps import layout, not_a_module\n"
        "def f():\n"
        "    import neuroexec.plan.graph\n"
        "    from ..errors import SpecError\n"
    )
    found = imported_modules("neuroexec.steps", source, modules)
    assert sorted(found) == [
        ("neuroexec.errors", 6),
        ("neuroexec.maps", 3),
        ("neuroexec.maps.layout", 3),
        ("neuroexec.plan.graph", 5),
        ("neuroexec.steps.common", 2),
        ("neuroexec.steps.train", 1),
    ]


def test_cycles_are_found_and_named() -> None:
    """A made-up graph: one three-node cycle and one two-node cycle are reported, a chain is not."""
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for a, b in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "a")]:
        edges[a][b].append(f"{a}.py:1")
    assert strongly_connected(edges) == [["d", "e"], ["a", "b", "c"]]
    assert shortest_cycle(edges, ["a", "b", "c"], "b") == ["b", "c", "a", "b"]
    assert "d -> e -> d" in describe(edges)


def test_only_the_entry_point_imports_the_cli() -> None:
    """The command line is the outermost layer: compat/ and the engine run specs without it."""
    importers = {
        f"{source} ({', '.join(where)})"
        for source, targets in module_graph().items()
        for target, where in targets.items()
        if package_of(target) == "neuroexec.cli"
        and package_of(source) not in ("neuroexec.cli", "neuroexec.__main__")
    }
    assert importers == set()


def test_no_import_cycle_between_modules() -> None:
    edges = module_graph()
    assert "neuroexec.plan.registry" in edges  # the graph is not empty
    cycles = describe(edges)
    print(cycles)
    assert not cycles, f"import cycles between modules of neuroexec:\n{cycles}"


def test_no_import_cycle_between_packages() -> None:
    edges = package_graph(module_graph())
    assert "neuroexec.cli" in edges
    cycles = describe(edges)
    print(cycles)
    assert not cycles, f"import cycles between packages of neuroexec:\n{cycles}"
