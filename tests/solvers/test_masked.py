"""Missing-entry NMF (``missing='ignore'``), prediction and RMSE against dense references."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf.errors import InvalidInputError, InvalidParameterError
from dasknmf.kernels.masked import divergence_terms, observed_terms
from dasknmf.kernels.stats import tile_stats
from dasknmf.kernels.tiles import EPSILON
from tests.helpers import make_factors
from tests.reference import masked_error, masked_mu
from tests.solvers.solver_testing import SolverTests, beta_mu_reference


def ratings(m=50, n=40, k=3, observed=0.3, seed=0, positive=False):
    """A low-rank "ratings" matrix, the mask of observed entries, and the full truth."""
    rng = np.random.default_rng(seed)
    truth = rng.random((m, k)) @ rng.random((k, n))
    mask = rng.random((m, n)) < observed
    if not positive:
        mask[0, 0], truth[0, 0] = True, 0.0  # an observed zero rating
    return truth, mask


def as_input(truth, mask, kind):
    """Sparse: observed entries stored (explicit zeros kept); dense: NaN where unobserved."""
    if kind == "dense":
        return np.where(mask, truth, np.nan)
    rows, cols = np.nonzero(mask)
    X = sp.csr_matrix((truth[rows, cols], (rows, cols)), shape=truth.shape)
    assert X.nnz == mask.sum()  # the explicit zero is stored
    return X


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory", "out-of-core"])
@pytest.mark.parametrize("chunks", [(50, 40), (16, 15)], ids=["one-tile", "tiles"])
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5, 0.0, 3.0])
def test_matches_dense_reference(kind, beta, chunks, persist):
    truth, mask = ratings(positive=beta <= 0)
    X = as_input(truth, mask, kind)
    W0, H0 = make_factors(50, 40, 4, seed=7)
    model = dasknmf.NMF(
        4,
        init="custom",
        missing="ignore",
        solver="mu",
        beta_loss=beta,
        max_iter=15,
        tol=0,
        alpha_W=0.002,
        l1_ratio=0.3,
        chunks=chunks,
        persist=persist,
    )
    W = model.fit_transform(X, W=W0, H=H0)
    # scikit-learn's penalty scaling: W's by n, H's by m.
    l1 = (40 * 0.002 * 0.3, 50 * 0.002 * 0.3)
    l2 = (40 * 0.002 * 0.7, 50 * 0.002 * 0.7)
    W_ref, H_ref, errors = masked_mu(truth, mask, W0, H0, 15, beta, l1, l2)
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.components_, H_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.reconstruction_err_, errors[-1], rtol=1e-9)
    assert model.n_observed_ == mask.sum()


def test_full_mask_is_plain_nmf():
    """With nothing missing, the masked updates are scikit-learn's Frobenius MU."""
    truth, _ = ratings(positive=True)
    W0, H0 = make_factors(50, 40, 4, seed=7)
    params = dict(init="custom", solver="mu", max_iter=20, tol=0, chunks=(16, 15))
    plain = dasknmf.NMF(4, **params).fit(truth, W=W0, H=H0)
    masked = dasknmf.NMF(4, missing="ignore", **params).fit(truth, W=W0, H=H0)
    np.testing.assert_allclose(masked.components_, plain.components_, rtol=1e-9)
    np.testing.assert_allclose(masked.reconstruction_err_, plain.reconstruction_err_, rtol=1e-9)


def test_unobserved_entries_do_not_matter(kind):
    """Changing values the mask hides leaves the fit unchanged (dense: NaN vs numbers
    can only be compared through the sparse path, which never sees them)."""
    truth, mask = ratings()
    W0, H0 = make_factors(50, 40, 4, seed=7)
    params = dict(init="custom", missing="ignore", max_iter=10, tol=0, chunks=(16, 15))
    a = dasknmf.NMF(4, **params).fit(as_input(truth, mask, kind), W=W0, H=H0)
    noisy = truth + 5 * (~mask)
    b = dasknmf.NMF(4, **params).fit(as_input(noisy, mask, kind), W=W0, H=H0)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-12)


def test_explicit_zero_is_an_observation():
    truth, mask = ratings()
    W0, H0 = make_factors(50, 40, 4, seed=7)
    params = dict(init="custom", missing="ignore", max_iter=200, tol=0)
    X = as_input(truth, mask, "sparse")
    with_zero = dasknmf.NMF(4, **params)
    with_zero.fit(X, W=W0, H=H0)
    X_dropped = X.copy()
    X_dropped.eliminate_zeros()
    without = dasknmf.NMF(4, **params).fit(X_dropped, W=W0, H=H0)
    assert X_dropped.nnz == X.nnz - 1
    # The observed zero pulls its prediction down; unobserved, nothing does.
    assert with_zero.predict([0], [0])[0] < 0.5 * without.predict([0], [0])[0]


def test_recovers_hidden_ratings():
    """Rank-5 ratings with 80% of entries hidden: held-out RMSE well below the
    RMSE of predicting the global mean of the observed ratings."""
    rng = np.random.default_rng(42)
    m, n, k = 400, 300, 5
    truth = rng.random((m, k)) @ rng.random((k, n))
    truth = 1 + 4 * truth / truth.max()  # ratings in [1, 5]
    observed = rng.random((m, n)) < 0.2
    X = as_input(truth, observed, "sparse")
    model = dasknmf.NMF(
        k, missing="ignore", max_iter=300, tol=0, random_state=0, chunks=(128, 128)
    )
    model.fit(X)
    rows, cols = np.nonzero(~observed)
    held_out = model.rmse((rows, cols, truth[rows, cols]))
    baseline = np.sqrt(np.mean((truth[rows, cols] - X.data.mean()) ** 2))
    assert held_out < 0.5 * baseline, (held_out, baseline)
    # rmse on a held-out *matrix* (stored entries) agrees with the triplet form.
    test = sp.csr_matrix((truth[rows, cols], (rows, cols)), shape=(m, n))
    np.testing.assert_allclose(model.rmse(test), held_out, rtol=1e-5)
    np.testing.assert_allclose(model.score(test), -held_out, rtol=1e-5)
    # and the training RMSE of the unclipped predictions is the reconstruction error
    # per observed entry.
    np.testing.assert_allclose(
        model.set_params(clip=False).rmse(X),
        model.reconstruction_err_ / np.sqrt(observed.sum()),
        rtol=1e-5,
    )


# β = 2, 1 and 0.5 are checked by the conformance classes below.
@pytest.mark.parametrize("beta", [0.0])
def test_divergence_never_increases(beta):
    truth, mask = ratings(positive=beta <= 0)
    seen = []
    model = dasknmf.NMF(
        4,
        missing="ignore",
        solver="mu",
        beta_loss=beta,
        max_iter=30,
        tol=0,
        random_state=0,
        chunks=(16, 15),
        callbacks=[seen.append],
    )
    model.fit(as_input(truth, mask, "sparse"))
    curve = [seen[0].error_at_init] + [info.error for info in seen]
    assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(curve)), curve


def test_rows_and_columns_without_observations(kind):
    truth, mask = ratings()
    mask[7, :] = False
    mask[:, 11] = False
    model = dasknmf.NMF(3, missing="ignore", max_iter=50, tol=0, random_state=0, chunks=(16, 15))
    W = model.fit_transform(as_input(truth, mask, kind))
    assert np.isfinite(W).all() and np.isfinite(model.components_).all()
    assert np.isfinite(model.reconstruction_err_)
    assert np.isfinite(model.predict([7, 0], [0, 11])).all()


def test_transform_matches_reference():
    """transform(X) iterates W's rows from sklearn's constant start with H fixed."""
    truth, mask = ratings()
    X = as_input(truth, mask, "dense")
    model = dasknmf.NMF(3, missing="ignore", solver="mu", max_iter=40, tol=0, random_state=0)
    model.fit(X)
    H = model.components_
    start = np.sqrt(np.nanmean(X) / 3)
    W_ref = np.full((50, 3), start)
    for _ in range(40):
        num = (np.nan_to_num(X) * mask) @ H.T
        den = (mask * (W_ref @ H)) @ H.T
        den[den == 0] = np.finfo(np.float32).eps
        W_ref = W_ref * num / den
    np.testing.assert_allclose(model.transform(X), W_ref, rtol=1e-8)


def test_predict_is_w_times_h():
    truth, mask = ratings()
    model = dasknmf.NMF(3, missing="ignore", max_iter=20, tol=0, random_state=0)
    W = model.fit_transform(as_input(truth, mask, "sparse"))
    rows, cols = np.array([0, 3, 49, 3]), np.array([39, 0, 5, 0])
    np.testing.assert_allclose(model.predict(rows, cols), (W @ model.components_)[rows, cols])
    assert model.predict([], []).shape == (0,)


def test_store_and_dask_inputs(tmp_path):
    truth, mask = ratings()
    X = as_input(truth, mask, "sparse")
    W0, H0 = make_factors(50, 40, 4, seed=7)
    params = dict(init="custom", missing="ignore", max_iter=10, tol=0)
    ref = dasknmf.NMF(4, chunks=(16, 15), **params).fit(X, W=W0, H=H0)
    store = tmp_path / "r.zarr"
    dasknmf.write_matrix(X, store, chunks=(16, 15), keep_zeros=True)
    model = dasknmf.NMF(4, **params)
    W = model.fit_transform(str(store), W=W0, H=H0)
    np.testing.assert_allclose(model.components_, ref.components_, rtol=1e-6)
    assert model.n_observed_ == X.nnz
    rows, cols = np.nonzero(~mask)
    np.testing.assert_allclose(
        model.predict(rows, cols), (np.asarray(W) @ model.components_)[rows, cols], rtol=1e-6
    )
    test = sp.csr_matrix((truth[rows, cols], (rows, cols)), shape=truth.shape)
    test_store = tmp_path / "t.zarr"
    dasknmf.write_matrix(test, test_store, chunks=(20, 20))  # a different tiling
    np.testing.assert_allclose(model.rmse(str(test_store)), model.rmse(test), rtol=1e-6)


def test_bad_parameters_and_inputs():
    truth, mask = ratings()
    X = as_input(truth, mask, "sparse")
    with pytest.raises(
        InvalidParameterError, match=r"missing='ignore' needs solver='als' or solver='mu'"
    ):
        dasknmf.NMF(3, missing="ignore", solver="hals").fit(X)
    with pytest.raises(InvalidParameterError, match="missing"):
        dasknmf.NMF(3, missing="zero").fit(X)
    with pytest.raises(InvalidInputError, match=r"1 observed zero\(s\).*itakura-saito"):
        dasknmf.NMF(3, missing="ignore", beta_loss="itakura-saito").fit(X)
    D = as_input(truth, mask, "dense")
    D[3, 4] = np.inf
    with pytest.raises(InvalidInputError, match="row 3, column 4"):
        dasknmf.NMF(3, missing="ignore").fit(D)
    with pytest.raises(InvalidInputError, match="NaN"):
        dasknmf.NMF(3).fit(as_input(truth, mask, "dense"))  # NaN needs missing='ignore'


def test_bad_prediction_requests():
    truth, mask = ratings()
    X = as_input(truth, mask, "sparse")
    model = dasknmf.NMF(3, missing="ignore", max_iter=5, tol=0).fit(X)
    with pytest.raises(InvalidParameterError, match=r"rows index 50 is out of range \[0, 50\)"):
        model.predict([50], [0])
    with pytest.raises(InvalidParameterError, match=r"cols index -1"):
        model.predict([0], [-1])
    with pytest.raises(InvalidParameterError, match="same length"):
        model.predict([0, 1], [0])
    with pytest.raises(InvalidParameterError, match="integer"):
        model.predict([0.5], [0])
    with pytest.raises(InvalidParameterError, match="3 values for 2"):
        model.rmse(([0, 1], [0, 1], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="fitted on 50"):
        model.rmse(sp.csr_matrix((10, 40)))
    with pytest.raises(InvalidInputError, match="no observed entries"):
        model.rmse(sp.csr_matrix((50, 40)))
    with pytest.raises(Exception, match="not fitted"):
        dasknmf.NMF(3, missing="ignore").predict([0], [0])


def test_observed_terms_kernel(kind):
    """Sparse tiles (explicit zeros kept) and dense NaN tiles give the same sampled terms."""
    truth, mask = ratings(m=12, n=9)
    tile = as_input(truth, mask, kind)
    rng = np.random.default_rng(1)
    w, h = rng.random((12, 3)), rng.random((3, 9))
    for beta in (2.0, 1.0, 0.5):
        num, den = observed_terms(w, h, tile, beta)
        wh = np.maximum(w @ h, EPSILON) if beta != 2 else w @ h
        num, den = (x.toarray() if sp.issparse(x) else x for x in (num, den))
        np.testing.assert_allclose(num, mask * truth * wh ** (beta - 2), rtol=1e-12)
        np.testing.assert_allclose(den, mask * wh ** (beta - 1), rtol=1e-12)
        div, count, squares = divergence_terms(w, h, tile, beta)[0]
        assert count == mask.sum()
        np.testing.assert_allclose(np.sqrt(2 * div), masked_error(truth, mask, w, h, beta))
        np.testing.assert_allclose(squares, ((truth - w @ h)[mask] ** 2).sum())


def test_tile_stats_counts_observed(kind):
    truth, mask = ratings(m=12, n=9)
    tile = as_input(truth, mask, kind)
    s = tile_stats(tile, 0, 0, 9, nan_is_missing=True)
    assert s[7] == mask.sum() and s[7] - s[2] == 1  # one observed zero
    assert s[5] == 0  # NaN is missing, not an error
    np.testing.assert_allclose(s[0], truth[mask].sum())


def test_ratings_methods_only_with_missing_ignore():
    """predict/rmse/score are the ratings interface: a plain NMF does not have them
    (scikit-learn's checks read a ``predict`` as ``predict(X)``)."""
    model = dasknmf.NMF(3, max_iter=5, tol=0).fit(np.ones((6, 5)))
    assert not any(hasattr(model, name) for name in ("predict", "rmse", "score"))
    assert hasattr(dasknmf.NMF(missing="ignore"), "predict")


def test_predict_accepts_pairs_array():
    truth, mask = ratings()
    X = as_input(truth, mask, "sparse")
    model = dasknmf.NMF(3, missing="ignore", max_iter=5, tol=0).fit(X)
    pairs = np.array([[0, 1], [4, 2]])
    np.testing.assert_array_equal(model.predict(pairs), model.predict([0, 4], [1, 2]))
    with pytest.raises(InvalidParameterError, match=r"shape \(p, 2\)"):
        model.predict(np.zeros((3, 3), dtype=int))


class TestMaskedSquaredError(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for masked β = 2."""

    loss, solver, masked, beta = "frobenius", "mu", True, 2.0
    reference = staticmethod(partial(beta_mu_reference, beta=2.0))


class TestMaskedKullbackLeibler(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for masked β = 1."""

    loss, solver, masked, beta = "kullback-leibler", "mu", True, 1.0
    reference = staticmethod(partial(beta_mu_reference, beta=1.0))
    error_rtol = 1e-7


class TestMaskedBeta(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for masked β = 0.5."""

    loss, solver, masked, beta = "beta", "mu", True, 0.5
    reference = staticmethod(partial(beta_mu_reference, beta=0.5))
