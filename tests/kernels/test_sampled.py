"""The sampled product (SDDMM): the compiled loop of :mod:`dasknmf.kernels.jit` and the
array-operations fallback, against ``W @ H`` at the stored entries."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.kernels.sampled import sampled_product, wh_at_nonzeros


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
    csr, compiled = wh_at_nonzeros(w, h, tile)
    assert csr.nnz == tile.nnz and compiled.dtype == dtype
    np.testing.assert_allclose(compiled, expected, rtol=1e-6)
    np.testing.assert_allclose(sampled_product(w, h, tile), expected, rtol=1e-6)


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
