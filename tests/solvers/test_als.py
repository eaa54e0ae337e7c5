"""Alternating non-negative least squares over observed entries (the ratings solver)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf.datasets import ratings
from dasknmf.errors import InvalidInputError, InvalidParameterError
from dasknmf.kernels import als
from dasknmf.solvers import MaskedALS, MaskedMU, get_solver
from tests import reference
from tests.helpers import make_factors
from tests.solvers.solver_testing import SolverTests


def masked_als_reference(V, mask, W0, H0, n_iter):
    return reference.masked_als(V, mask, W0, H0, n_iter)


class TestMaskedALS(SolverTests):
    loss = "frobenius"
    solver = "als"
    masked = True
    rtol = 1e-8
    error_rtol = 1e-10
    reference = staticmethod(masked_als_reference)

    def error(self, X, mask, W, H) -> float:
        return reference.masked_error(X, mask, W, H, 2.0)


def split(X: sp.csr_matrix, fraction: float = 0.2, seed: int = 0):
    """``(train, (rows, cols, values))``: ratings held out at random."""
    X = X.tocoo()
    test = np.random.default_rng(seed).random(X.nnz) < fraction
    train = sp.csr_matrix((X.data[~test], (X.row[~test], X.col[~test])), shape=X.shape)
    return train, (X.row[test], X.col[test], X.data[test])


def small_ratings(m=60, n=45, observed=0.35, seed=0):
    rng = np.random.default_rng(seed)
    truth = 1 + rng.random((m, 3)) @ rng.random((3, n))
    mask = rng.random((m, n)) < observed
    mask[2, :] = False  # a user with no ratings
    rows, cols = np.nonzero(mask)
    return sp.csr_matrix((truth[rows, cols], (rows, cols)), shape=truth.shape), mask


# -- the kernel ------------------------------------------------------------------------------


def test_nnls_gram_is_scipys_nnls():
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 20, 6))
    y = rng.standard_normal((300, 20))
    G, b = np.einsum("pia,pib->pab", A, A), np.einsum("pia,pi->pa", A, y)
    expected = np.array([nnls(a, t)[0] for a, t in zip(A, y, strict=True)])
    for start in (np.zeros((300, 6)), rng.random((300, 6)), expected):
        x = als.nnls_gram(G, b, np.zeros(300), 0.0, start)
        np.testing.assert_allclose(x, expected, atol=1e-10)


# -- through the estimator -------------------------------------------------------------------


def test_auto_is_als_for_ratings_and_mu_otherwise():
    assert get_solver(2.0, "auto", True) is MaskedALS
    assert get_solver(1.0, "auto", True) is MaskedMU
    assert get_solver(2.0, "auto", False).__name__ == "FrobeniusMU"
    assert dasknmf.NMF().solver == "auto"


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory", "out-of-core"])
@pytest.mark.parametrize("chunks", [(60, 45), (16, 10)], ids=["one-tile", "tiles"])
@pytest.mark.parametrize(
    "alpha_W, l1_ratio, alpha_weighted", [(0.0, 0.0, 0.05), (0.003, 0.4, 0.0), (0.002, 0.0, 0.02)]
)
def test_penalties_match_the_dense_reference(
    kind, chunks, persist, alpha_W, l1_ratio, alpha_weighted
):
    X, mask = small_ratings()
    if kind == "dense":
        X = np.where(mask, X.toarray(), np.nan)
    W0, H0 = make_factors(60, 45, 4, seed=3)
    model = dasknmf.NMF(
        4,
        init="custom",
        missing="ignore",
        max_iter=8,
        tol=0,
        alpha_W=alpha_W,
        l1_ratio=l1_ratio,
        alpha_weighted=alpha_weighted,
        chunks=chunks,
        persist=persist,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # underdetermined rows when unpenalised
        W = model.fit_transform(X, W=W0, H=H0)
    # scikit-learn's scaling of the elastic net: W's by n, H's by m.
    l1 = (45 * alpha_W * l1_ratio, 60 * alpha_W * l1_ratio)
    l2 = (45 * alpha_W * (1 - l1_ratio), 60 * alpha_W * (1 - l1_ratio))
    weighted = (alpha_weighted, alpha_weighted)
    W_ref, H_ref, errors = reference.masked_als(
        X, mask, W0, H0, 8, l1=l1, l2=l2, weighted=weighted
    )
    np.testing.assert_allclose(W, W_ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.components_, H_ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.reconstruction_err_, errors[-1], rtol=1e-8)
    assert not W[2].any()  # the user with no ratings


def test_alpha_weighted_is_a_ridge_when_nothing_is_missing():
    X = np.random.default_rng(1).random((30, 20))
    W0, H0 = make_factors(30, 20, 3, seed=1)
    params = dict(init="custom", max_iter=10, tol=0)
    a = dasknmf.NMF(3, alpha_weighted=0.01, **params).fit(X, W=W0, H=H0)
    # λ·n on W and λ·m on H: alpha_W = alpha_H = λ in scikit-learn's scaling.
    b = dasknmf.NMF(3, alpha_W=0.01, **params).fit(X, W=W0, H=H0)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-12)


@pytest.mark.slow
def test_store_and_cluster_give_the_in_memory_factors(tmp_path):
    from distributed import Client, LocalCluster

    X, _, _ = ratings(600, 150, 12_000, seed=2, dtype=np.float64)
    path = str(tmp_path / "ratings.zarr")
    dasknmf.write_matrix(X, path, chunks=(200, 60))
    W0, H0 = make_factors(600, 150, 5, seed=4)
    params = dict(init="custom", missing="ignore", alpha_weighted=0.03, max_iter=6, tol=0)

    def fit(source, **extra):
        model = dasknmf.NMF(5, **params, **extra)
        W = model.fit_transform(source, W=W0, H=H0)
        return np.asarray(W.compute() if hasattr(W, "compute") else W), model.components_

    expected = fit(X, chunks=(200, 60))
    results = [fit(X), fit(path, persist=False), fit(path, persist=True)]
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        results.append(fit(path, persist=False))
    for W, H in results:
        np.testing.assert_allclose(W, expected[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(H, expected[1], rtol=1e-9, atol=1e-12)


def test_held_out_rmse_settles_within_30_sweeps():
    """On the built-in ratings data, the held-out RMSE is within 1 % of its final
    value after at most 30 sweeps (where masked MU takes hundreds)."""
    X, _, _ = ratings(6_000, 600, 150_000, rank=10, seed=1)
    train, held_out = split(X)
    rows, cols, values = held_out
    curve = []

    def record(info):
        W, H = np.asarray(info.W), np.asarray(info.H)
        pred = np.einsum("pk,kp->p", W[rows], H[:, cols])
        curve.append(float(np.sqrt(np.mean((values - pred) ** 2))))

    model = dasknmf.NMF(
        10,
        missing="ignore",
        alpha_weighted=0.05,
        max_iter=100,
        tol=0,
        random_state=0,
        callbacks=[record],
        clip=False,  # the curve above is of unclipped predictions
    )
    model.fit(train)
    final = model.rmse(held_out)
    np.testing.assert_allclose(curve[-1], final, rtol=1e-5)
    settled = next(i for i, e in enumerate(curve, 1) if e <= 1.01 * final)
    assert settled <= 30, (settled, final, curve)
    # Far better than predicting the mean rating everywhere.
    assert final < 0.6 * np.sqrt(np.mean((values - train.data.mean()) ** 2))


def test_bad_input_gets_a_clear_answer():
    X, _mask = small_ratings()
    bad = X.copy()
    bad.data[5] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        dasknmf.NMF(3, missing="ignore", alpha_weighted=0.01).fit(bad)
    # k above a row's number of ratings, unpenalised: warned, with the way out.
    with pytest.warns(UserWarning, match=r"fewer observed entries than n_components=\d+.*"):
        dasknmf.NMF(20, missing="ignore", max_iter=3, tol=0, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = dasknmf.NMF(
            20, missing="ignore", alpha_weighted=0.01, max_iter=3, tol=0, random_state=0
        )
        W = model.fit_transform(X)
    assert np.isfinite(W).all() and not W[2].any()  # the user with no ratings
    # predicted the lowest rating seen (0 unclipped)
    assert model.predict([2], [0])[0] == model.rating_range_[0] == X.data.min()
    assert model.set_params(clip=False).predict([2], [0])[0] == 0.0
    with pytest.raises(InvalidParameterError, match="'alpha_weighted' parameter must be"):
        dasknmf.NMF(3, missing="ignore", alpha_weighted=-0.1).fit(X)
    with pytest.raises(InvalidParameterError, match=r"'alpha_weighted' parameter 0\.1 needs"):
        dasknmf.NMF(3, missing="ignore", solver="mu", alpha_weighted=0.1).fit(X)
    with pytest.raises(InvalidParameterError, match="needs missing='ignore'"):
        dasknmf.NMF(3, solver="als").fit(X)
    with pytest.raises(InvalidParameterError, match="needs solver='mu'"):
        dasknmf.NMF(3, solver="als", missing="ignore", beta_loss="kullback-leibler").fit(X)


def test_resume_from_a_state_gives_the_uninterrupted_fit():
    X, _ = small_ratings()
    states = []
    params = dict(missing="ignore", alpha_weighted=0.02, max_iter=12, tol=0, random_state=0)
    full = dasknmf.NMF(3, **params, callbacks=[lambda info: states.append(info.state())]).fit(X)
    resumed = dasknmf.NMF(3, **params).fit(X, resume=states[4])
    np.testing.assert_allclose(resumed.components_, full.components_, rtol=1e-12)
    assert resumed.n_iter_ == full.n_iter_
