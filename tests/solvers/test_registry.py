"""The solver registry: one table read by ``fit``, ``transform`` and the job checks."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import numpy as np
import pytest

import dasknmf
import tests.solvers
from dasknmf.errors import InvalidParameterError
from dasknmf.solvers import HALS, FrobeniusMU, KullbackLeiblerMU, MaskedALS, MaskedMU, registry
from dasknmf.solvers.registry import (
    SolverKey,
    UnsupportedSolverError,
    get_solver,
    register_solver,
    registered,
    solver_names,
)
from tests.solvers.solver_testing import SolverTests


def _conformance_classes() -> list[type[SolverTests]]:
    for info in pkgutil.iter_modules(tests.solvers.__path__):
        importlib.import_module(f"tests.solvers.{info.name}")
    found, todo = [], list(SolverTests.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_registered_solver_has_a_conformance_class():
    covered = {
        SolverKey(cls.loss, registry.canonical_solver(cls.solver), cls.masked)
        for cls in _conformance_classes()
    }
    assert set(registered()) <= covered, set(registered()) - covered
    for cls in _conformance_classes():
        assert registry.loss_key(cls.beta) == cls.loss, cls


@pytest.mark.parametrize(
    "beta, solver, masked, expected",
    [
        (2.0, "mu", False, FrobeniusMU),
        (2.0, "hals", False, HALS),
        (2.0, "cd", False, HALS),
        (1.0, "mu", False, KullbackLeiblerMU),
        (2.0, "mu", True, MaskedMU),
        (0.0, "mu", True, MaskedMU),
        (2.0, "als", True, MaskedALS),
        (2.0, "auto", True, MaskedALS),
        (1.0, "auto", True, MaskedMU),
        (2.0, "auto", False, FrobeniusMU),
        (1.0, "auto", False, KullbackLeiblerMU),
    ],
)
def test_lookup(beta, solver, masked, expected):
    assert get_solver(beta, solver, masked) is expected


def test_unsupported_combinations_name_the_parameter_and_the_way_out():
    with pytest.raises(UnsupportedSolverError, match=r"'beta_loss' parameter 'itakura-saito' "):
        get_solver(0.0, "hals", False, beta_loss="itakura-saito")
    with pytest.raises(UnsupportedSolverError) as info:
        get_solver(2.0, "cd", True)
    assert info.value.parameter == "missing" and info.value.available == ("als", "mu")
    assert "missing='ignore' needs solver='als' or solver='mu'; solver='cd'" in str(info.value)
    with pytest.raises(
        UnsupportedSolverError, match="solver='als' fits the observed entries only"
    ):
        get_solver(2.0, "als", False)
    with pytest.raises(
        UnsupportedSolverError, match=r"1.0 needs solver='mu'; solver='als' handles"
    ):
        get_solver(1.0, "als", True)
    with pytest.raises(InvalidParameterError, match=r"'solver' parameter must be one of 'mu'"):
        get_solver(2.0, "newton", False)
    with pytest.raises(InvalidParameterError, match="loss must be one of"):
        register_solver("huber", "mu", False, FrobeniusMU)


@dataclass(frozen=True)
class CountingMU(FrobeniusMU):
    """MU that records which of ``fit`` and ``transform`` built it."""

    built = []  # noqa: RUF012 (a record shared by the instances of one test)

    @classmethod
    def build(cls, problem):
        cls.built.append(problem.in_memory)
        return super().build(problem)


@pytest.fixture
def table(monkeypatch):
    """The registry's table, restored after the test."""
    monkeypatch.setattr(registry, "_TABLE", dict(registry._TABLE))
    return registry._TABLE


def test_fit_and_transform_read_the_same_table(table):
    register_solver("frobenius", "mu", False, CountingMU)
    CountingMU.built.clear()
    X = np.random.default_rng(0).random((30, 20))
    model = dasknmf.NMF(3, max_iter=5, tol=0, random_state=0).fit(X)
    model.transform(X)
    assert CountingMU.built == [True, False]


def test_a_new_engine_registers_a_solver_name(table):
    register_solver("frobenius", "replicates", False, CountingMU)
    assert "replicates" in solver_names()
    assert get_solver(2.0, "replicates", False) is CountingMU
    with pytest.raises(UnsupportedSolverError, match="solver='replicates' handles the Frobenius"):
        get_solver(1.0, "replicates", False)
    model = dasknmf.NMF(3, solver="replicates", max_iter=3, tol=0, random_state=0)
    CountingMU.built.clear()
    model.fit(np.random.default_rng(0).random((20, 10)))
    assert CountingMU.built == [True]
