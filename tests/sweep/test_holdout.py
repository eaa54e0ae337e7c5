"""Bi-cross-validation against a dense reference built on SciPy's NNLS."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.optimize

from dasknmf import inputs
from dasknmf.kernels.stack import Stack
from dasknmf.sweep.holdout import BiCrossValidation
from tests.helpers import make_matrix

RANKS = (2, 3)


def _reference_test_errors(X, cv, W, H, ranks):
    """Per replicate: W_I and H_J row by row with ``scipy.optimize.nnls``, then the
    dense error on the held-out block."""
    X = np.asarray(X.todense()) if hasattr(X, "todense") else X
    left = X[np.ix_(cv.rows, cv.train_cols)]
    top = X[np.ix_(cv.train_rows, cv.cols)]
    test = X[np.ix_(cv.rows, cv.cols)]
    errors, start = [], 0
    for k in ranks:
        W_r, H_r = W[:, start : start + k], H[start : start + k]
        start += k
        W_I = np.array([scipy.optimize.nnls(H_r.T, row)[0] for row in left])
        H_J = np.array([scipy.optimize.nnls(W_r, col)[0] for col in top.T]).T
        errors.append(np.linalg.norm(test - W_I @ H_J))
    return np.array(errors)


@pytest.mark.parametrize("tiled", [False, True], ids=["in-memory", "tiles"])
def test_held_out_errors_match_nnls_per_row(kind, tiled):
    X = make_matrix(50, 40, density=0.4, seed=4, kind=kind)
    cv = BiCrossValidation.draw(50, 40, fraction=0.2, seed=3)
    rng = np.random.default_rng(0)
    W = rng.random((len(cv.train_rows), sum(RANKS)))
    H = rng.random((sum(RANKS), len(cv.train_cols)))
    expected = _reference_test_errors(X, cv, W, H, RANKS)
    V = inputs.as_tiled(X, chunks=(12, 15), threads=2) if tiled else X
    if tiled:
        D = cv.train(V)
        W = da.from_array(W, chunks=(D.chunks[0], -1))
        H = da.from_array(H, chunks=(-1, D.chunks[1]))
    errors, H_full = cv.test_errors(V, W, H, Stack(RANKS))
    np.testing.assert_allclose(errors, expected, rtol=1e-5)
    assert H_full.shape == (sum(RANKS), 40)
    np.testing.assert_array_equal(H_full[:, cv.train_cols], np.asarray(H))


def test_the_split_is_random_disjoint_and_covers_the_matrix():
    cv = BiCrossValidation.draw(1000, 300, fraction=0.1, seed=1)
    assert (len(cv.rows), len(cv.cols)) == (100, 30)
    assert sorted(np.concatenate([cv.rows, cv.train_rows])) == list(range(1000))
    assert sorted(np.concatenate([cv.cols, cv.train_cols])) == list(range(300))
    other = BiCrossValidation.draw(1000, 300, fraction=0.1, seed=2)
    assert not np.array_equal(cv.rows, other.rows)
