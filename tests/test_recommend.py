"""Ratings predictions a recommender uses: clipped predictions, top-n items per user."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf import recommend
from dasknmf.errors import InvalidParameterError


@pytest.fixture(scope="module")
def ratings():
    rng = np.random.default_rng(0)
    m, n = 70, 40
    truth = 1 + 6 * rng.random((m, 3)) @ rng.random((3, n)) / 3
    mask = rng.random((m, n)) < 0.35
    mask[5, :] = True
    mask[5, [3, 17]] = False  # a user who rated all but two items
    rows, cols = np.nonzero(mask)
    values = np.clip(np.round(truth[rows, cols] + rng.normal(0, 0.4, rows.size)), 1, 5)
    X = sp.csr_matrix((values, (rows, cols)), shape=(m, n))
    model = dasknmf.NMF(
        4, missing="ignore", alpha_weighted=0.01, random_state=0, max_iter=15, tol=0
    )
    return X, model.fit(X)


def reference_top(X, W, H, n, *, exclude_seen, bounds):
    """Dense NumPy: every score, the rated ones set to -inf, a stable sort."""
    scores = np.clip(W @ H, *bounds) if bounds is not None else W @ H
    if exclude_seen:
        scores[X.toarray() != 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    top = np.take_along_axis(scores, order, axis=1)
    return np.where(np.isinf(top), -1, order), np.where(np.isinf(top), np.nan, top)


def test_predict_is_clipped_to_the_observed_range_unless_asked_not_to(ratings):
    X, model = ratings
    assert model.rating_range_ == (1.0, 5.0)
    rows, cols = np.indices(X.shape).reshape(2, -1)
    raw = (model.W_ @ model.components_)[rows, cols]
    assert raw.max() > 5 or raw.min() < 1  # the test means something
    np.testing.assert_allclose(model.predict(rows, cols), np.clip(raw, 1, 5), rtol=1e-12)
    model.set_params(clip=False)
    try:
        np.testing.assert_allclose(model.predict(rows, cols), raw, rtol=1e-12)
        unclipped = model.rmse(X)
    finally:
        model.set_params(clip=True)
    coo = X.tocoo()
    pred = (model.W_ @ model.components_)[coo.row, coo.col]
    assert unclipped == pytest.approx(np.sqrt(np.mean((coo.data - pred) ** 2)), rel=1e-9)
    clipped = np.sqrt(np.mean((coo.data - np.clip(pred, 1, 5)) ** 2))
    assert model.rmse(X) == pytest.approx(clipped, rel=1e-9)
    assert model.rmse((coo.row, coo.col, coo.data)) == pytest.approx(clipped, rel=1e-9)


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_recommend_matches_a_dense_reference(ratings, exclude_seen):
    X, model = ratings
    items, scores = reference_top(
        X, model.W_, model.components_, 6, exclude_seen=exclude_seen, bounds=(1.0, 5.0)
    )
    for user in (0, 5, 11):
        got_items, got_scores = model.recommend(user, n=6, exclude_seen=exclude_seen)
        np.testing.assert_allclose(got_scores, scores[user], rtol=1e-12)
        # Ties (scores clipped to 5) may come in any order of equal scores.
        np.testing.assert_array_equal(got_items, items[user])
    if exclude_seen:
        assert not np.isin(model.recommend(0)[0], X[[0]].indices).any()


def test_a_user_with_fewer_unrated_items_than_n_gets_minus_one(ratings):
    _, model = ratings
    items, scores = model.recommend(5, n=4)
    assert sorted(items[:2]) == [3, 17]
    assert (items[2:] == -1).all() and np.isnan(scores[2:]).all()


@pytest.mark.parametrize("chunks", [None, (16, 15)])
def test_recommend_all_is_recommend_for_every_user_block_by_block(ratings, chunks, monkeypatch):
    X, model = ratings
    monkeypatch.setattr(recommend, "BATCH_FLOATS", 3 * X.shape[1])  # 3 rows at a time
    if chunks is not None:
        model = dasknmf.NMF(**model.get_params()).fit(da.from_array(X, chunks, asarray=False))
    items, scores = model.recommend_all(n=5)
    ref_items, ref_scores = reference_top(
        X, np.asarray(model.W_), model.components_, 5, exclude_seen=True, bounds=(1.0, 5.0)
    )
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-12)
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_array_equal(items[7], model.recommend(7, n=5)[0])


def test_recommend_on_a_dense_matrix_leaves_out_its_non_nan_entries():
    rng = np.random.default_rng(1)
    X = 1 + 4 * rng.random((30, 12))
    X[rng.random(X.shape) < 0.6] = np.nan
    model = dasknmf.NMF(
        2, missing="ignore", alpha_weighted=0.05, random_state=0, max_iter=5, tol=0
    )
    model.fit(X)
    items, _ = model.recommend_all(n=3)
    for user in range(30):
        rated = np.flatnonzero(~np.isnan(X[user]))
        assert not np.isin(items[user], rated).any()


def test_bad_arguments_name_the_value(ratings):
    _, model = ratings
    with pytest.raises(InvalidParameterError, match=r"n must be an int in \[1, 40\].*got 41"):
        model.recommend(0, n=41)
    with pytest.raises(InvalidParameterError, match=r"user must be a row index in \[0, 70\).*70"):
        model.recommend(70)
    with pytest.raises(InvalidParameterError, match="got 0"):
        model.recommend_all(n=0)
    assert not hasattr(dasknmf.NMF(2), "recommend")
