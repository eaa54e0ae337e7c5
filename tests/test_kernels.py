from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf import kernels
from tests.helpers import make_matrix


@pytest.fixture(params=["sparse", "dense"])
def tile(request):
    return make_matrix(9, 6, density=0.4, kind=request.param)


def test_tile_times_ht_matches_dense(tile):
    h = np.random.default_rng(0).random((3, 6))
    np.testing.assert_allclose(
        kernels.tile_times_ht(tile, h), np.asarray(sp.csr_matrix(tile).toarray()) @ h.T
    )


def test_wt_times_tile_matches_dense(tile):
    w = np.random.default_rng(0).random((9, 3))
    expected = w.T @ sp.csr_matrix(tile).toarray()
    out = kernels.wt_times_tile(w, tile)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected)


def test_update_rows_sums_tiles():
    rng = np.random.default_rng(3)
    tiles = [make_matrix(5, 4, seed=s) for s in range(3)]
    hs = [rng.random((2, 4)) for _ in range(3)]
    w, hht = rng.random((5, 2)), rng.random((2, 2)) + 0.1
    num = sum(t.toarray() @ h.T for t, h in zip(tiles, hs, strict=True))
    out = kernels.update_rows(kernels.mu_rule, kernels.NO_PENALTY, w, tiles, hs, hht)
    np.testing.assert_allclose(out, w * num / (w @ hht))


def test_mu_step_zero_denominator_gives_zero_not_nan():
    x = np.array([[1.0, 2.0], [0.0, 0.0]])
    numerator = np.array([[2.0, 1.0], [0.0, 0.0]])
    denominator = np.array([[4.0, 0.0], [0.0, 0.0]])
    out = kernels.mu_step(x, numerator, denominator)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], 0.5)
    # a zero denominator is replaced by EPSILON, as scikit-learn does
    np.testing.assert_allclose(out[0, 1], 2.0 * 1.0 / kernels.EPSILON)
    np.testing.assert_array_equal(out[1], 0.0)


def test_mu_step_leaves_inputs_other_than_denominator_alone():
    x, num, den = np.ones((2, 2)), np.full((2, 2), 3.0), np.full((2, 2), 2.0)
    kernels.mu_step(x, num, den)
    np.testing.assert_array_equal(x, 1.0)
    np.testing.assert_array_equal(num, 3.0)


def test_inner_is_float64():
    a = np.full((1000, 100), 1e-3, dtype=np.float32)
    assert kernels.inner(a, a).dtype == np.float64
    np.testing.assert_allclose(float(kernels.inner(a, a)), 1e5 * 1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_tile_stats(kind):
    X = make_matrix(6, 5, density=0.5, kind="dense")
    X[2, 3], X[4, 1], X[1, 4] = -1.0, np.nan, -2.0
    tile = sp.csr_matrix(X) if kind == "sparse" else X
    s = kernels.tile_stats(tile, 10, 20, 100)
    finite = X[np.isfinite(X)]
    np.testing.assert_allclose(s[0], finite.sum())
    np.testing.assert_allclose(s[1], (finite**2).sum())
    assert s[2] == np.count_nonzero(X)
    assert s[3] == 2  # two negatives
    assert s[4] == (10 + 1) * 100 + (20 + 4)  # first in row-major order: (1, 4)
    assert s[5] == 1
    assert s[6] == (10 + 4) * 100 + (20 + 1)


def test_tile_stats_clean_tile_has_no_positions():
    s = kernels.tile_stats(sp.csr_matrix((3, 3)), 0, 0, 3)
    assert s[2] == 0 and np.isinf(s[4]) and np.isinf(s[6])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sampled_products_agree_with_dense(dtype, index_dtype):
    """The compiled SDDMM and the array-operations fallback both equal (W H) at the
    stored entries, in CSR storage order, explicit zeros and empty rows included."""
    rng = np.random.default_rng(3)
    dense = sp.random(40, 30, density=0.2, random_state=rng, dtype=dtype).toarray()
    dense[5, :] = 0
    dense[7, 3] = 1.0
    tile = sp.csr_matrix(dense)
    row7 = slice(tile.indptr[7], tile.indptr[8])
    tile.data[row7][tile.indices[row7] == 3] = 0
    assert tile.nnz == np.count_nonzero(dense)  # (7, 3) is now an explicit zero
    tile.indices = tile.indices.astype(index_dtype)
    tile.indptr = tile.indptr.astype(index_dtype)
    w, h = rng.random((40, 4)).astype(dtype), rng.random((4, 30)).astype(dtype)
    rows = np.repeat(np.arange(40), np.diff(tile.indptr))
    expected = (w @ h)[rows, tile.indices]
    csr, compiled = kernels.wh_at_nonzeros(w, h, tile)
    assert csr.nnz == tile.nnz and compiled.dtype == dtype
    np.testing.assert_allclose(compiled, expected, rtol=1e-6)
    np.testing.assert_allclose(kernels.sampled_product(w, h, tile), expected, rtol=1e-6)


def test_numba_is_loaded_only_when_a_sampled_product_needs_it():
    """A worker running the Frobenius solvers never pays numba's ≈ 50 MB."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, scipy.sparse as sp, dasknmf\n"
        "dasknmf.NMF(2, max_iter=3, tol=0).fit(np.ones((6, 5)))\n"
        "assert 'numba' not in sys.modules\n"
        "X = sp.random(6, 5, density=0.5, format='csr', random_state=0)\n"
        "dasknmf.NMF(2, max_iter=3, tol=0, beta_loss=1).fit(X)\n"
        "assert 'numba' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
