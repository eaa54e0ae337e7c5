"""HALS (coordinate descent) against a literal reference and scikit-learn's 'cd'."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.decomposition import NMF as SklearnNMF

import dasknmf
from dasknmf.datasets import term_document
from tests import reference
from tests.helpers import CHUNKINGS, make_factors, make_matrix
from tests.solvers.solver_testing import SolverTests


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory", "out-of-core"])
@pytest.mark.parametrize("chunks", CHUNKINGS, ids=lambda c: f"tiles{c[0]}x{c[1]}")
def test_matches_the_literal_coordinate_descent(kind, chunks, persist):
    X = make_matrix(37, 23, kind=kind)
    W0, H0 = make_factors(37, 23, 4)
    W_ref, H_ref, errors = reference.hals_frobenius(X, W0, H0, 6)
    model = dasknmf.NMF(
        4, solver="hals", init="custom", max_iter=6, tol=0, chunks=chunks, persist=persist
    )
    W = model.fit_transform(X, W=W0, H=H0)
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.components_, H_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.reconstruction_err_, errors[-1], rtol=1e-9)


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory", "out-of-core"])
@pytest.mark.parametrize("chunks", [(32, 30), (32, 8)], ids=["few-column-tiles", "wide"])
@pytest.mark.parametrize(
    "alpha_W, l1_ratio",
    [(0.0, 0.0), pytest.param(0.01, 0.0, marks=pytest.mark.slow), (0.01, 0.7)],
)
def test_same_as_sklearn_cd_without_shuffle(persist, chunks, alpha_W, l1_ratio):
    X = make_matrix(120, 80, density=0.15)
    W0, H0 = make_factors(120, 80, 6, seed=7)
    params = dict(init="custom", max_iter=50, tol=0, alpha_W=alpha_W, l1_ratio=l1_ratio)
    sk = SklearnNMF(6, solver="cd", shuffle=False, **params)
    W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    ours = dasknmf.NMF(6, solver="cd", chunks=chunks, persist=persist, **params)
    W = ours.fit_transform(X, W=W0, H=H0)
    np.testing.assert_allclose(W, W_sk, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_, rtol=1e-9)
    # transform: scikit-learn starts coordinate descent from zeros
    np.testing.assert_allclose(ours.transform(X[:40]), sk.transform(X[:40]), rtol=1e-7, atol=1e-10)


def test_with_tol_sklearn_stops_elsewhere_and_its_n_iter_gives_its_factors():
    """The README's recipe: scikit-learn's 'cd' stops by its projected-gradient rule
    (any iteration), dasknmf's by the error rule (a multiple of check_every); with
    scikit-learn's n_iter_ as max_iter and tol=0 the factors are scikit-learn's."""
    X = make_matrix(120, 80, density=0.15)
    W0, H0 = make_factors(120, 80, 6, seed=7)
    sk = SklearnNMF(6, solver="cd", shuffle=False, init="custom", tol=1e-3, max_iter=500)
    W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    stopped = dasknmf.NMF(6, solver="hals", init="custom", tol=1e-3, max_iter=500)
    stopped.fit(X, W=W0, H=H0)
    assert stopped.n_iter_ % 10 == 0 and stopped.n_iter_ != sk.n_iter_ < 500
    same = dasknmf.NMF(6, solver="hals", init="custom", tol=0, max_iter=sk.n_iter_)
    W = same.fit_transform(X, W=W0, H=H0)
    np.testing.assert_allclose(W, W_sk, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(same.components_, sk.components_, rtol=1e-7, atol=1e-10)


def test_error_never_increases_and_beats_mu_per_iteration():
    X = term_document(3000, 800, seed=1, dtype=np.float64)
    W0, H0 = make_factors(3000, 800, 8, seed=2)
    curves = {}
    for solver in ("hals", "mu"):
        seen = []
        model = dasknmf.NMF(
            8,
            solver=solver,
            init="custom",
            max_iter=30,
            tol=0,
            chunks=(750, 800),
            callbacks=[seen.append],
        )
        model.fit(X, W=W0, H=H0)
        curves[solver] = [seen[0].error_at_init] + [info.error for info in seen]
    hals = curves["hals"]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(hals))
    assert hals[-1] < curves["mu"][-1]
    # HALS after 10 iterations is already better than MU after 30 on this data
    assert hals[10] < curves["mu"][-1]


def test_unknown_solver_is_rejected():
    with pytest.raises(dasknmf.InvalidParameterError, match=r"'solver' parameter must be one of"):
        dasknmf.NMF(2, solver="newton").fit(make_matrix(6, 5))


class TestHALS(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for HALS."""

    loss, solver = "frobenius", "hals"
    n_iter = 6  # the reference is a literal Python loop

    @staticmethod
    def reference(V, mask, W0, H0, n_iter):
        return reference.hals_frobenius(V, W0, H0, n_iter)
