"""Kullback–Leibler multiplicative updates against scikit-learn and a dense formula."""

from __future__ import annotations

import itertools
import warnings
from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _multiplicative_update_w

import dasknmf
from dasknmf.kernels.tiles import EPSILON
from tests.helpers import make_factors, make_matrix
from tests.solvers.solver_testing import SolverTests, beta_mu_reference

KL = "kullback-leibler"


def dense_kl_error(X, W, H) -> float:
    """sqrt(2 D(X ‖ WH)) computed densely, independently of dasknmf."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    WH = np.maximum(W @ H, EPSILON)
    mask = X > EPSILON
    d = (X[mask] * np.log(X[mask] / WH[mask])).sum() - X[mask].sum() + (W @ H).sum()
    return float(np.sqrt(2 * d))


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory", "out-of-core"])
@pytest.mark.parametrize("chunks", [(120, 80), (32, 30), (32, 8)], ids=["1", "few", "wide"])
@pytest.mark.parametrize("alpha_W, l1_ratio", [(0.0, 0.0), (0.001, 0.3)])
def test_fit_matches_sklearn(kind, persist, chunks, alpha_W, l1_ratio):
    X = make_matrix(120, 80, density=0.15, kind=kind)
    W0, H0 = make_factors(120, 80, 6, seed=7)
    params = dict(
        init="custom", max_iter=40, tol=0, beta_loss=KL, alpha_W=alpha_W, l1_ratio=l1_ratio
    )
    sk = SklearnNMF(6, solver="mu", **params)
    W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    ours = dasknmf.NMF(6, chunks=chunks, persist=persist, **params)
    W = ours.fit_transform(X, W=W0, H=H0)
    np.testing.assert_allclose(W, W_sk, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_, rtol=1e-9)
    np.testing.assert_allclose(
        ours.reconstruction_err_, dense_kl_error(X, W, ours.components_), rtol=1e-9
    )


@pytest.mark.parametrize("chunks", [(40, 80), (7, 30)])
def test_transform_matches_sklearn_without_l1(chunks):
    X = make_matrix(120, 80, density=0.15)
    W0, H0 = make_factors(120, 80, 6, seed=7)
    params = dict(init="custom", max_iter=40, tol=0, beta_loss=KL, alpha_W=0.001)
    sk = SklearnNMF(6, solver="mu", **params).fit(X, W=W0.copy(), H=H0.copy())
    ours = dasknmf.NMF(6, chunks=chunks, **params).fit(X, W=W0, H=H0)
    np.testing.assert_allclose(ours.transform(X[:40]), sk.transform(X[:40]), rtol=1e-9, atol=1e-12)


def test_sklearn_transform_accumulates_l1_into_its_cached_row_sums():
    """Why the transform comparison above has no L1 term: scikit-learn 1.9 adds
    ``l1_reg_W`` in place to the cached ``H_sum`` when ``update_H=False``, so the
    penalty grows with every iteration. dasknmf applies it once per iteration."""
    X = make_matrix(30, 80, density=0.15)
    W0, H0 = make_factors(30, 80, 6, seed=7)
    H_sum = None
    _, H_sum, *_ = _multiplicative_update_w(
        X, W0.copy(), H0, 1, 0.1, 0.0, 1.0, H_sum, None, None, False
    )
    assert not np.allclose(H_sum, H0.sum(axis=1))  # scikit-learn's state was changed
    np.testing.assert_allclose(H_sum, H0.sum(axis=1) + 0.1)


def test_divergence_never_increases_and_zero_rows_stay_finite():
    X = make_matrix(60, 40, density=0.2, kind="dense")
    X[5, :] = 0
    X[:, 7] = 0
    W0, H0 = make_factors(60, 40, 4, seed=3)
    seen = []
    model = dasknmf.NMF(
        4, init="custom", beta_loss=1, max_iter=25, tol=0, chunks=(16, 40), callbacks=[seen.append]
    )
    W = model.fit_transform(X, W=W0, H=H0)
    curve = [seen[0].error_at_init] + [info.error for info in seen]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(curve))
    assert np.isfinite(W).all() and np.isfinite(model.components_).all()
    assert np.all(W[5] < 1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(beta_loss="poisson"), r"'beta_loss' parameter must be 'frobenius' \(2\)"),
        (dict(beta_loss=float("nan")), r"'beta_loss' parameter must be"),
        (dict(beta_loss=True), r"'beta_loss' parameter must be"),
        (dict(beta_loss=KL, solver="hals"), r"needs solver='mu'"),
        (dict(beta_loss=0.5, solver="cd"), r"needs solver='mu'"),
    ],
)
def test_invalid_losses_are_rejected(params, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(dasknmf.InvalidParameterError, match=match):
            dasknmf.NMF(2, **params).fit(make_matrix(8, 6))


class TestKullbackLeiblerMU(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for KL updates."""

    loss, solver, beta = "kullback-leibler", "mu", 1.0
    reference = staticmethod(partial(beta_mu_reference, beta=1.0))
    error_rtol = 1e-7
