"""Validation entries: the split, early stopping on their RMSE, the best factors kept."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf import validation
from dasknmf.errors import InvalidInputError, InvalidParameterError


def noisy_ratings(m=80, n=60, observed=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = 1 + 3 * rng.random((m, 2)) @ rng.random((2, n)) / 2
    mask = rng.random((m, n)) < observed
    rows, cols = np.nonzero(mask)
    values = np.clip(truth[rows, cols] + rng.normal(0, 0.5, rows.size), 1, 5)
    return sp.csr_matrix((values, (rows, cols)), shape=(m, n))


def dense_rmse(X: sp.csr_matrix, W, H, bounds=None) -> float:
    coo = X.tocoo()
    pred = np.einsum("pk,kp->p", W[coo.row], H[:, coo.col])
    if bounds is not None:
        pred = np.clip(pred, *bounds)
    return float(np.sqrt(np.mean((coo.data - pred) ** 2)))


# -- the split ------------------------------------------------------------------------


def test_split_partitions_the_observed_entries_whatever_the_tiling():
    X = noisy_ratings()
    X = X.tolil()
    X[0, 0] = 0.0  # an explicit zero is a rating
    X = X.tocsr()
    train, valid = validation.split(X, 0.2, seed=3)
    assert train.nnz + valid.nnz == X.nnz
    assert (train + valid != X).nnz == 0
    positions = [set(zip(*p.nonzero(), strict=True)) for p in (train, valid)]
    assert not positions[0] & positions[1]
    assert 0.1 < valid.nnz / X.nnz < 0.3
    tiled = da.from_array(X, chunks=(25, 17), asarray=False)
    t2, v2 = (p.compute() for p in validation.split(tiled, 0.2, seed=3))
    assert (t2 != train).nnz == 0 and (v2 != valid).nnz == 0
    assert t2.nnz == train.nnz and v2.nnz == valid.nnz  # stored zeros kept
    _, other = validation.split(X, 0.2, seed=4)
    assert (other != valid).nnz > 0


def test_split_of_a_dense_matrix_makes_the_other_side_missing():
    X = noisy_ratings().toarray()
    X[X == 0] = np.nan
    train, valid = validation.split(X, 0.25, seed=0)
    seen = ~np.isnan(X)
    assert not (~np.isnan(train) & ~np.isnan(valid)).any()
    assert ((~np.isnan(train)) | (~np.isnan(valid)) == seen).all()
    np.testing.assert_array_equal(np.where(np.isnan(valid), train, valid)[seen], X[seen])


# -- early stopping -------------------------------------------------------------------


def fit(X, **params):
    options = dict(n_components=8, missing="ignore", random_state=0, max_iter=60, tol=1e-3)
    return dasknmf.NMF(**{**options, **params}).fit(X)


def test_validation_rmse_is_the_rmse_of_the_kept_factors_on_the_held_entries():
    X = noisy_ratings()
    model = fit(X, validation=0.2, alpha_weighted=0.05)
    train, valid = validation.split(X, 0.2, seed=0)
    W, H = model.W_, model.components_
    assert model.n_validation_ == valid.nnz
    assert model.n_observed_ == train.nnz
    assert model.validation_rmse_ == pytest.approx(
        dense_rmse(valid, W, H, model.rating_range_), rel=1e-6
    )
    assert model.validation_rmse_ == min(r for _, r in model.validation_curve_)
    assert dict(model.validation_curve_)[model.best_iteration_] == model.validation_rmse_
    # The training error reported is that of the kept factors, on the training entries.
    assert model.reconstruction_err_ == pytest.approx(
        dense_rmse(train, W, H) * np.sqrt(train.nnz), rel=1e-5
    )


@pytest.mark.filterwarnings("ignore:X has .* fewer observed entries")
def test_an_overfitting_fit_stops_after_patience_and_keeps_the_best_factors():
    # Eight components, no penalty, few noisy ratings: the validation RMSE rises.
    X = noisy_ratings(observed=0.2, seed=1)
    model = fit(X, validation=0.2, alpha_weighted=0.0, tol=0.0)
    curve = dict(model.validation_curve_)
    assert model.converged_
    assert model.best_iteration_ < model.n_iter_ < 60
    assert model.n_iter_ - model.best_iteration_ == validation.PATIENCE
    assert curve[model.n_iter_] > curve[model.best_iteration_]
    _, valid = validation.split(X, 0.2, seed=0)
    kept = dense_rmse(valid, model.W_, model.components_, model.rating_range_)
    assert kept == pytest.approx(curve[model.best_iteration_], rel=1e-6)


def test_validation_is_the_same_on_every_tiling_and_out_of_core():
    X = noisy_ratings()
    one = fit(X, validation=0.1, alpha_weighted=0.05)
    tiled = fit(X, validation=0.1, alpha_weighted=0.05, chunks=(30, 25), persist=False)
    np.testing.assert_allclose(tiled.W_, one.W_, rtol=1e-6, atol=1e-9)
    assert tiled.best_iteration_ == one.best_iteration_
    np.testing.assert_allclose(
        [r for _, r in tiled.validation_curve_], [r for _, r in one.validation_curve_], rtol=1e-6
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_fit_reports_both_rmses(capsys):
    fit(noisy_ratings(), validation=0.1, alpha_weighted=0.05, verbose=1, max_iter=3)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RMSE: train ") and ", validation " in last


@pytest.mark.parametrize("value", [0.0, 0.5, 1.2, "5%", True])
def test_bad_validation_names_the_value(value):
    with pytest.raises(InvalidParameterError, match=r"'validation' parameter .*\(0, 0.5\)") as e:
        fit(noisy_ratings(), validation=value)
    assert repr(value) in str(e.value)


def test_validation_needs_missing_ignore_and_some_entries():
    with pytest.raises(InvalidParameterError, match=r"validation.*0.1.*missing='ignore'"):
        dasknmf.NMF(2, validation=0.1).fit(np.ones((5, 4)))
    tiny = sp.csr_matrix(([3.0], ([0], [0])), shape=(3, 3))
    with pytest.raises(InvalidInputError, match="held out none"):
        fit(tiny, n_components=1, validation=1e-9)
