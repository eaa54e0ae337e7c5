from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.decomposition._nmf import _initialize_nmf

from dasknmf.errors import InvalidParameterError
from dasknmf.init import custom_init, initialize, random_init
from dasknmf.random import standard_normal
from tests.helpers import make_matrix


def low_rank(m, n, r, seed=0):
    """A non-negative matrix of rank exactly r with well separated singular values."""
    rng = np.random.default_rng(seed)
    return rng.random((m, r)) @ np.diag(np.linspace(3, 1, r)) @ rng.random((r, n))


@pytest.mark.parametrize("chunks", [(40, 30), (9, 30), (11, 7)])
def test_random_init_is_independent_of_tiling_and_scaled_like_sklearn(chunks):
    X = make_matrix(40, 30, density=0.5)
    V = da.from_array(X, chunks=chunks, asarray=False)
    mean = X.sum() / X.size
    W, H = random_init(V, 4, mean=mean, seed=5, dtype=np.float64)
    W_ref, H_ref = random_init(
        da.from_array(X, chunks=(40, 30), asarray=False), 4, mean=mean, seed=5, dtype=np.float64
    )
    np.testing.assert_array_equal(W.compute(), W_ref.compute())
    np.testing.assert_array_equal(H.compute(), H_ref.compute())
    assert W.chunks == (V.chunks[0], (4,)) and H.chunks == ((4,), V.chunks[1])
    assert (W.compute() >= 0).all()


def test_random_init_distribution():
    V = da.zeros((20_000, 50), chunks=(5_000, 50))
    W, _H = random_init(V, 10, mean=0.4, seed=0, dtype=np.float32)
    W = W.compute()
    # |N(0, 1)| · sqrt(mean / k) has mean sqrt(2/π) · sqrt(mean / k)
    np.testing.assert_allclose(W.mean(), np.sqrt(2 / np.pi) * np.sqrt(0.4 / 10), rtol=0.01)
    assert W.dtype == np.float32


def test_seeds_and_streams_differ():
    a = standard_normal((100, 3), (50, 3), seed=1, stream=0).compute()
    b = standard_normal((100, 3), (50, 3), seed=2, stream=0).compute()
    c = standard_normal((100, 3), (50, 3), seed=1, stream=1).compute()
    assert not np.allclose(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("variant", ["nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.parametrize("chunks", [(60, 45), (13, 10)])
def test_nndsvd_matches_sklearn_on_exactly_low_rank_data(variant, chunks):
    X = low_rank(60, 45, 6)
    k = 4
    V = da.from_array(X, chunks=chunks)
    W, H = initialize(V, k, variant, mean=X.mean(), seed=0, dtype=np.float64)
    W, H = W.compute(), H.compute()
    W_sk, H_sk = _initialize_nmf(X, k, init=variant, random_state=0)
    if variant == "nndsvdar":
        # The zero-filling values are random; compare where scikit-learn's are not filled.
        W_base, H_base = _initialize_nmf(X, k, init="nndsvd", random_state=0)
        mask_w, mask_h = W_base > 0, H_base > 0
        np.testing.assert_allclose(W[mask_w], W_sk[mask_w], rtol=1e-6)
        np.testing.assert_allclose(H[mask_h], H_sk[mask_h], rtol=1e-6)
        assert (W[~mask_w] > 0).all() and (W[~mask_w] < X.mean()).all()
    else:
        np.testing.assert_allclose(W, W_sk, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(H, H_sk, rtol=1e-6, atol=1e-9)


def test_custom_init_checks_shapes_and_values():
    V = da.from_array(make_matrix(10, 8), chunks=(5, 4), asarray=False)
    W, H = np.ones((10, 3)), np.ones((3, 8))
    Wd, Hd = custom_init(V, 3, W, H, dtype=np.float32)
    assert Wd.chunks == ((5, 5), (3,)) and Hd.chunks == ((3,), (4, 4))
    assert Wd.dtype == np.float32
    with pytest.raises(
        InvalidParameterError, match=r"input W\): expected \(10, 3\), got \(10, 2\)"
    ):
        custom_init(V, 3, np.ones((10, 2)), H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match=r"Negative values .*input H"):
        custom_init(V, 3, W, -H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match=r"input H.* full of zeros"):
        custom_init(V, 3, W, 0 * H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match=r"input W.*NaN"):
        custom_init(V, 3, np.full((10, 3), np.nan), H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match="needs both W and H"):
        custom_init(V, 3, W, None, dtype=np.float64)


def test_unknown_init_is_rejected():
    V = da.ones((4, 4), chunks=2)
    with pytest.raises(InvalidParameterError, match="init must be one of"):
        initialize(V, 2, "svd", mean=1.0, seed=0, dtype=np.float64)
