"""β-divergence multiplicative updates (β ∉ {1, 2}) against scikit-learn."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest
from sklearn.decomposition import NMF as SklearnNMF

import dasknmf
from tests.helpers import make_factors, make_matrix
from tests.solvers.solver_testing import K, M, N, SolverTests, beta_mu_reference


def matrix_for(beta: float, kind: str):
    # β ≤ 0 divergences are infinite where X = 0 and WH > 0 is not: use positive data.
    X = make_matrix(60, 40, density=1.0 if beta <= 0 else 0.3, kind=kind)
    return X + 0.1 if kind == "dense" and beta <= 0 else X


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory", "out-of-core"])
@pytest.mark.parametrize("chunks", [(60, 40), (16, 15)], ids=["one-tile", "tiles"])
@pytest.mark.parametrize("beta", ["itakura-saito", 0.5, 1.5, 3.0])
def test_matches_sklearn(kind, beta, chunks, persist):
    b = 0.0 if beta == "itakura-saito" else beta
    X = matrix_for(b, kind)
    W0, H0 = make_factors(60, 40, 4, seed=7)
    params = dict(init="custom", max_iter=20, tol=0, beta_loss=beta, alpha_W=0.001)
    sk = SklearnNMF(4, solver="mu", **params)
    W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    ours = dasknmf.NMF(4, chunks=chunks, persist=persist, **params)
    W = ours.fit_transform(X, W=W0, H=H0)
    np.testing.assert_allclose(W, W_sk, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_, rtol=1e-9)
    np.testing.assert_allclose(ours.transform(X[:20]), sk.transform(X[:20]), rtol=1e-9, atol=1e-12)


def test_divergence_never_increases():
    X = matrix_for(0.0, "sparse")
    W0, H0 = make_factors(60, 40, 4, seed=3)
    seen = []
    dasknmf.NMF(
        4,
        init="custom",
        beta_loss="itakura-saito",
        max_iter=20,
        tol=0,
        chunks=(16, 15),
        callbacks=[seen.append],
    ).fit(X, W=W0, H=H0)
    curve = [seen[0].error_at_init] + [info.error for info in seen]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(curve))


class TestItakuraSaitoMU(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for β = 0."""

    loss, solver, beta = "beta", "mu", 0.0
    reference = staticmethod(partial(beta_mu_reference, beta=0.0))

    @pytest.fixture(params=["dense"])
    def data(self, request):
        # Itakura–Saito is infinite at a zero entry: a positive matrix, given densely.
        rng = np.random.default_rng(5)
        X = np.round(rng.random((M, N)) * 5, 2) + 0.01
        W0, H0 = make_factors(M, N, K, seed=2)
        return X, np.ones((M, N), dtype=bool), W0, H0


class TestBeta15MU(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for β = 1.5."""

    loss, solver, beta = "beta", "mu", 1.5
    reference = staticmethod(partial(beta_mu_reference, beta=1.5))
