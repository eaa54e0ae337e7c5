"""``docs/architecture.md`` names only code that exists, and names every layer.

The document is the project's map of its own code; a rename that forgets it fails
here. Every backquoted name that looks like dasknmf code is resolved: module paths
(``dasknmf/solvers/registry.py``, ``solvers/``), dotted names relative to the package
(``solvers.registry.get_solver``, ``kernels.frobenius.mu_rule``) and
``file.py::function`` references.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import dasknmf

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "dasknmf"

_CODE = re.compile(r"`([^`\n]+)`")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})+$")


def _top_level_names() -> set[str]:
    return {info.name for info in pkgutil.iter_modules(dasknmf.__path__)}


def _resolve_dotted(name: str) -> bool:
    """Whether ``name`` (``dasknmf.`` optional) is a module or an attribute chain of
    one, e.g. ``solvers.registry.get_solver`` or ``fit.FitState.iteration``."""
    parts = name.removeprefix("dasknmf.").split(".")
    for cut in range(len(parts), 0, -1):
        module_name = "dasknmf." + ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # not a module: try a shorter prefix
            raise
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                annotations = getattr(obj, "__annotations__", {})
                if attr not in annotations:  # a dataclass field without a default
                    return False
                obj = None
            else:
                obj = getattr(obj, attr)
        return True
    return False


def _resolve_path(text: str) -> bool:
    """Whether a path like ``solvers/registry.py``, ``dasknmf/ingest/`` or
    ``tests/test_mu.py::test_x`` exists (``::name`` must be defined in the file)."""
    path, _, function = text.partition("::")
    for base in (ROOT, PACKAGE):
        candidate = base / path
        if candidate.exists():
            if function:
                source = candidate.read_text(encoding="utf-8")
                pattern = rf"^\s*(def|class) {re.escape(function)}\b"
                return re.search(pattern, source, re.M) is not None
            return True
    return False


def referenced_names(text: str) -> list[str]:
    """The backquoted tokens of ``text`` that claim to be dasknmf code."""
    tops = _top_level_names()
    found = []
    for token in _CODE.findall(text):
        token = token.strip().rstrip("()")
        if " " in token:
            continue
        first = re.split(r"[./:]", token.removeprefix("dasknmf/").removeprefix("dasknmf."))[0]
        is_path = "/" in token or token.endswith(".py")
        ours = first in tops or token.startswith(("tests/", "benchmarks/", "docs/"))
        if (is_path and ours) or (_DOTTED.match(token) and first in tops) or token in tops:
            found.append(token)
    return found


def test_the_reference_finder_sees_the_kinds_of_names_the_document_uses():
    text = (
        "`solvers/registry.py`, `dasknmf/storage/`, `solvers.registry.get_solver`, "
        "`tests/test_structure.py::test_no_import_cycle`, `W @ H`, `k × k`, `numpy.ndarray`, "
        "`lineage`, `nndsvd`"
    )
    assert referenced_names(text) == [
        "solvers/registry.py",
        "dasknmf/storage/",
        "solvers.registry.get_solver",
        "tests/test_structure.py::test_no_import_cycle",
        "lineage",
    ]
    assert not _resolve_dotted("solvers.registry.no_such_function")
    assert not _resolve_path("solvers/no_such_module.py")


@pytest.mark.parametrize("name", referenced_names(DOC.read_text(encoding="utf-8")))
def test_every_name_in_the_architecture_document_exists(name):
    is_path = "/" in name or name.endswith(".py")
    exists = _resolve_path(name) if is_path else _resolve_dotted(name)
    assert exists, f"docs/architecture.md names {name!r}, which does not exist"


def test_the_architecture_document_names_every_module_of_the_package():
    text = DOC.read_text(encoding="utf-8")
    named = set()
    for token in referenced_names(text):
        path = token.partition("::")[0].removeprefix("dasknmf/").removeprefix("dasknmf.")
        named.add(re.split(r"[./]", path)[0] if "/" in path else path.split(".")[0])
        named.add(path.removesuffix(".py").rstrip("/").replace("/", "."))
    missing = sorted(
        name
        for name in _top_level_names() | _package_modules()
        if name not in named and not name.startswith("_")
    )
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"


def _package_modules() -> set[str]:
    """``solvers.registry``-style names of the modules inside dasknmf's packages."""
    names = set()
    for info in pkgutil.walk_packages(dasknmf.__path__, prefix=""):
        if "." in info.name:
            names.add(info.name)
    return names
