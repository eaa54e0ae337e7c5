from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.linalg import randomized_svd


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_randomized_svd_matches_lapack(kind):
    # Rank 8 < sketch width 15: the range finder captures the range exactly.
    rng = np.random.default_rng(0)
    A = rng.random((80, 8)) * (rng.random((80, 8)) < 0.3)
    B = rng.random((8, 50)) * (rng.random((8, 50)) < 0.3)
    dense = A @ np.diag(2.0 ** -np.arange(8)) @ B
    X = sp.csr_matrix(dense) if kind == "sparse" else dense
    V = da.from_array(X, chunks=(17, 12), asarray=False)
    U, s, Vt = randomized_svd(V, 5, seed=0)
    U_ref, s_ref, Vt_ref = np.linalg.svd(dense, full_matrices=False)
    np.testing.assert_allclose(s, s_ref[:5], rtol=1e-6)
    # Singular vectors agree up to sign.
    U, Vt = U.compute(), Vt.compute()
    for j in range(5):
        sign = np.sign(U[:, j] @ U_ref[:, j])
        np.testing.assert_allclose(sign * U[:, j], U_ref[:, j], atol=1e-5)
        np.testing.assert_allclose(sign * Vt[j], Vt_ref[j], atol=1e-5)
    assert U.shape == (80, 5) and Vt.shape == (5, 50)
