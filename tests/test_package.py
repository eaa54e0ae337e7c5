"""The package ``dasknmf`` itself: its public names, imported on first use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import dasknmf

REPO = Path(__file__).resolve().parents[1]

#: Loaded by the fit, never by ``import dasknmf`` or ``dasknmf --version`` / ``--help``.
HEAVY = ("numpy", "scipy", "dask", "distributed", "zarr", "sklearn", "pyarrow", "numba", "h5py")


def loaded_after(code: str) -> list[str]:
    """The modules of :data:`HEAVY` that a fresh interpreter has loaded after ``code``."""
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.splitlines()[-1].split()[1:]


def test_import_dasknmf_loads_no_array_library():
    assert loaded_after("import dasknmf; dasknmf.__version__; dasknmf.DaskNMFError") == []
    # A public name loads what it needs, and only then.
    assert "dask" in loaded_after("import dasknmf; dasknmf.NMF")


def test_a_fit_without_a_cluster_never_loads_distributed():
    # Asking whether a client is active must not import distributed (its start-up
    # would be part of every laptop fit's time).
    fit = (
        "import numpy as np, dasknmf; "
        "dasknmf.NMF(2, max_iter=3, random_state=0).fit(np.random.default_rng(0).random((30, 20)))"
    )
    assert "distributed" not in loaded_after(fit)
    assert "distributed" in loaded_after("import distributed")


def test_every_public_name_resolves():
    for name in dasknmf.__all__:
        assert getattr(dasknmf, name) is not None, name
    assert set(dasknmf.__all__) <= set(dir(dasknmf))
    namespace: dict[str, object] = {}
    exec("from dasknmf import *", namespace)
    assert namespace["NMF"] is dasknmf.NMF and namespace["write_matrix"] is dasknmf.write_matrix


def test_ingest_stays_the_function_once_its_package_is_imported():
    # Importing the package dasknmf.ingest sets the attribute of its parent to the
    # package; dasknmf.ingest is the function all the same, whatever was imported first.
    code = (
        "import dasknmf, dasknmf.ingest.registry\n"
        "from dasknmf.ingest.dispatch import ingest\n"
        "assert dasknmf.ingest is ingest, dasknmf.ingest\n"
        "from dasknmf import ingest as again\n"
        "assert again is ingest"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    from dasknmf.ingest.dispatch import ingest

    assert dasknmf.ingest is ingest


def test_an_unknown_attribute_is_an_attribute_error():
    try:
        dasknmf.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no attribute 'no_such_name'" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no AttributeError")


def test_each_optional_dependency_is_the_extra_its_error_names():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = {re.split(r"[\[<>=!~ ]", d)[0] for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    # `pip install 'dasknmf[anndata]'` (MissingDependencyError) and
    # `pip install 'dasknmf[dashboard]'` (jobs.cluster.DASHBOARD_INSTALL) install them.
    for extra, package in (("anndata", "h5py"), ("dashboard", "bokeh")):
        assert package not in required
        assert any(d.startswith(package) for d in extras[extra])
        assert any(d.startswith(package) for d in extras["test"])  # the tests need both
    # What the core fit imports stays required.
    assert {"numpy", "scipy", "dask", "distributed", "zarr", "scikit-learn", "numba"} <= required
