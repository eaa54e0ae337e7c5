"""The import graph of ``dasknmf``: no cycle anywhere, and the layers' arrows point down.

Every ``.py`` file under ``dasknmf/`` is parsed (nothing is imported) and every import
in it becomes an edge, wherever it stands: at the top, inside a function (a deferred
import dodges a cycle at run time but is still one), or inside ``try``. Only imports
under ``if TYPE_CHECKING:`` are left out, as they never run.

An import names one module: ``from dasknmf.pkg import name`` is an edge to
``dasknmf.pkg.name`` when that is a module, else to ``dasknmf.pkg`` (the package's
``__init__``). The parents that Python initialises on the way are not edges: they are
already being initialised when one of their submodules runs, so a package's
``__init__`` importing its submodules, which import their siblings, is no cycle. A
submodule that takes a name from a package whose ``__init__`` imports it back (say
``from dasknmf import NMF`` in a module that ``dasknmf/__init__.py`` reaches) is one.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = "dasknmf"
# Found without importing it: the graph is read from the source files alone.
ROOT = Path(importlib.util.find_spec(PACKAGE).origin).parent

Graph = Mapping[str, Iterable[str]]

#: The name of a module's table of lazily imported attributes (see ``dasknmf/__init__.py``).
LAZY_TABLE = "_LAZY_ATTRIBUTES"


class Rule(NamedTuple):
    """Modules under ``importers`` (but not under ``exempt``) reach none under ``forbidden``."""

    importers: str
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()
    #: Only the modules' own imports count (a layer may reach the forbidden one through
    #: the layer between, but not skip it).
    direct: bool = False


#: The layers, top to bottom: cli > jobs > estimator > fit, sweep > solvers > products >
#: kernels; storage and ingest beside them. A rule holds for every path, not only for
#: direct imports: a module reaches what the modules it imports reach.
LAYER_RULES = (
    Rule("dasknmf.storage", ("dasknmf.ingest",), "importers build on the formats, not back"),
    Rule(
        "dasknmf",
        ("dasknmf.cli",),
        "the command line is the top layer",
        exempt=("dasknmf.cli", "dasknmf.__main__"),
    ),
    # The package and every submodule under it (a rule covers all names it prefixes).
    Rule(
        "dasknmf.kernels",
        ("dasknmf.products", "dasknmf.solvers", "dasknmf.fit", "dasknmf.estimator"),
        "kernels are per-tile math, below every dask graph",
    ),
    Rule(
        "dasknmf.solvers",
        (
            "dasknmf.estimator",
            "dasknmf.jobs",
            "dasknmf.cli",
            "dasknmf.storage",
            "dasknmf.ingest",
        ),
        "solvers are pure functions of arrays: no files, no jobs, no printing",
    ),
    Rule(
        "dasknmf.sweep",
        ("dasknmf.estimator", "dasknmf.jobs", "dasknmf.cli", "dasknmf.storage", "dasknmf.ingest"),
        "the sweep engine is the fit loop's peer: arrays in, arrays out",
    ),
    Rule(
        "dasknmf.estimator",
        ("dasknmf.kernels", "dasknmf.products"),
        "the estimator reaches the math through the solver registry",
        direct=True,
    ),
)


# -- the graph -------------------------------------------------------------------------


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(source: str, module: str, is_package: bool) -> set[tuple[str, ...]]:
    """What ``source`` (the text of ``module``) imports, at any depth, as alternatives.

    ``import a.b`` gives ``("a.b",)``; ``from a import b`` gives ``("a.b", "a")``: the
    module ``a.b`` if there is one, else the name ``b`` of the package ``a``.
    :func:`resolve` picks, knowing the package's modules.
    """
    imports: set[tuple[str, ...]] = set()
    # The package that relative imports start from.
    here = module.split(".") if is_package else module.split(".")[:-1]

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _is_type_checking(node.test):
                for child in node.orelse:
                    self.visit(child)
            else:
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            imports.update((alias.name,) for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = here[: len(here) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            imports.update((f"{origin}.{alias.name}", origin) for alias in node.names)

        def visit_Assign(self, node: ast.Assign) -> None:
            # A lazy attribute table ``_LAZY_ATTRIBUTES = {name: "module"}``, read by a
            # module ``__getattr__``, stands for ``from module import name``.
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if LAZY_TABLE in names and isinstance(node.value, ast.Dict):
                for key, value in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                        imports.add((f"{value.value}.{key.value}", value.value))
            self.generic_visit(node)

    Imports().visit(ast.parse(source))
    return imports


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def resolve(imports: Iterable[tuple[str, ...]], modules: Iterable[str]) -> set[str]:
    """The modules that ``imports`` load by name: of each, the first alternative that is one.

    Imports from outside the package (or of a module that does not exist) give none.
    """
    known = set(modules)
    return {next((n for n in names if n in known), None) for names in imports} - {None}


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """The package's modules and, for each, the package's modules it imports."""
    modules = module_names(root, package)
    graph = {}
    for module, path in modules.items():
        imports = imported_modules(path.read_text(), module, path.name == "__init__.py")
        # A module importing itself (or its own package from its __init__) is no cycle.
        graph[module] = resolve(imports, modules) - {module}
    return graph


# -- cycles ----------------------------------------------------------------------------


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (first node repeated at the end) per strongly connected component.

    Tarjan's algorithm, iterative; the components come sorted, each cycle from its
    smallest node, so the failure message is the same on every run.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    successors = {node: sorted(graph.get(node, ())) for node in graph}
    for targets in list(successors.values()):
        for target in targets:
            successors.setdefault(target, [])

    for start in sorted(successors):
        if start in index:
            continue
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors[node]:
                    components.append(sorted(component))
    return [_cycle_in(component, successors) for component in sorted(components)]


def _cycle_in(component: list[str], successors: Mapping[str, list[str]]) -> list[str]:
    """A shortest cycle through the component's first node, inside the component."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in successors[node]:
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start] * 2
                if child in members and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")  # pragma: no cover


def path_between(graph: Graph, source: str, targets: Iterable[str]) -> list[str] | None:
    """A shortest import path from ``source`` to a module under one of ``targets``."""
    previous: dict[str, str | None] = {source: None}
    frontier = [source]
    while frontier:
        following = []
        for node in frontier:
            if node != source and _under(node, targets):
                path = [node]
                while (step := previous[path[-1]]) is not None:
                    path.append(step)
                return path[::-1]
            for child in sorted(graph.get(node, ())):
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return None


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# -- the finder checks itself ----------------------------------------------------------


def test_find_cycles_finds_a_synthetic_cycle():
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]


def test_find_cycles_finds_each_component_and_a_shortest_cycle():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"a"}, "x": {"y"}, "y": {"x"}, "z": set()}
    assert find_cycles(graph) == [["a", "b", "a"], ["x", "y", "x"]]


def test_find_cycles_accepts_a_dag():
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a"}}) == []


def test_imports_at_any_depth_but_not_under_type_checking():
    source = """
from __future__ import annotations
import typing
from typing import TYPE_CHECKING
import p.top
if TYPE_CHECKING:
    from p import hidden
else:
    import p.otherwise
if typing.TYPE_CHECKING:
    import p.hidden_too
def f():
    from p.deferred import thing
    try:
        import p.in_try
    except ImportError:
        pass
class C:
    def g(self):
        from . import sibling
        from ..up import name
"""
    imports = imported_modules(source, "p.sub.mod", is_package=False)
    expected = {
        ("p.top",),
        ("p.otherwise",),
        ("p.deferred.thing", "p.deferred"),
        ("p.in_try",),
        ("p.sub.sibling", "p.sub"),
        ("p.up.name", "p.up"),
    }
    assert expected <= imports
    assert not {names for names in imports if "hidden" in names[0]}


def test_relative_imports_in_a_package_init_start_from_the_package():
    imports = imported_modules("from .a import x\nfrom . import b\n", "p.q", is_package=True)
    assert imports == {("p.q.a.x", "p.q.a"), ("p.q.b", "p.q")}


def test_from_package_import_names_a_submodule_or_the_package():
    modules = {"p", "p.sub", "p.sub.mod", "p.other"}
    # A submodule: the package is only initialised on the way, no edge to it.
    assert resolve({("p.sub.mod", "p.sub")}, modules) == {"p.sub.mod"}
    # A name defined in the package's __init__: an edge to the package.
    assert resolve({("p.NMF", "p")}, modules) == {"p"}
    assert resolve({("p.other",), ("p",)}, modules) == {"p.other", "p"}
    assert resolve({("numpy.linalg", "numpy"), ("p.gone",)}, modules) == set()


def test_a_parent_init_that_imports_back_its_importer_is_a_cycle(tmp_path):
    package = tmp_path / "p"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from p.model import Model\n")
    (package / "model.py").write_text("from p.sub.base import Base\n")
    (package / "sub" / "__init__.py").write_text("from p.sub.base import Base\n")
    (package / "sub" / "base.py").write_text("def f():\n    from p import Model\n")
    (package / "sub" / "leaf.py").write_text("from p.sub import base\n")
    graph = import_graph(package, "p")
    assert graph["p.sub.leaf"] == {"p.sub.base"}
    assert find_cycles(graph) == [["p", "p.model", "p.sub.base", "p"]]


def test_a_lazy_attribute_table_counts_as_imports(tmp_path):
    source = '_LAZY_ATTRIBUTES = {"Model": "p.model", "f": "p.sub.base"}\n'
    imports = imported_modules(source, "p", is_package=True)
    assert imports == {("p.model.Model", "p.model"), ("p.sub.base.f", "p.sub.base")}
    # So a submodule taking a lazy name back from the package is still a cycle.
    package = tmp_path / "p"
    package.mkdir()
    (package / "__init__.py").write_text(source.replace(', "f": "p.sub.base"', ""))
    (package / "model.py").write_text("def g():\n    from p import Model\n")
    assert find_cycles(import_graph(package, "p")) == [["p", "p.model", "p"]]


def test_path_between_names_the_route():
    graph = {"a": {"b"}, "b": {"c.x"}, "c.x": set()}
    assert path_between(graph, "a", ["c"]) == ["a", "b", "c.x"]
    assert path_between(graph, "c.x", ["a"]) is None


# -- the package -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_covers_the_package(graph):
    # Guards the checks below against passing on an empty or unresolved graph.
    assert {"dasknmf", "dasknmf.estimator", "dasknmf.fit", "dasknmf.cli"} <= set(graph)
    assert "dasknmf.estimator" in graph["dasknmf"]
    assert "dasknmf.fit" in graph["dasknmf.estimator.fitting"]


def test_no_import_cycle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in dasknmf:\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize("rule", LAYER_RULES, ids=lambda rule: rule.importers)
def test_layers(graph, rule):
    # A renamed layer must not leave its rule checking nothing.
    assert any(_under(module, [rule.importers]) for module in graph), rule.importers
    broken = []
    for module in sorted(graph):
        if _under(module, [rule.importers]) and not _under(module, rule.exempt):
            if rule.direct:
                hits = [t for t in graph[module] if _under(t, rule.forbidden)]
                path = [module, hits[0]] if hits else None
            else:
                path = path_between(graph, module, rule.forbidden)
            if path is not None:
                broken.append("  " + " -> ".join(path))
    assert not broken, f"{rule.importers} must not import {', '.join(rule.forbidden)} " + (
        f"({rule.why}):\n" + "\n".join(broken)
    )


def test_a_direct_rule_allows_the_layer_between_but_not_skipping_it():
    rule = Rule("a.top", ("a.low",), "the middle layer is the way down", direct=True)
    graph = {"a.top": {"a.mid"}, "a.mid": {"a.low"}, "a.low": set()}
    test_layers(graph, rule)
    graph["a.top"].add("a.low")
    with pytest.raises(AssertionError, match=r"a\.top -> a\.low"):
        test_layers(graph, rule)
