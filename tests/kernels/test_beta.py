"""The β-divergence kernels' dense ``W_i H_j``, formed a batch of rows at a time."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dasknmf.kernels.beta import (
    beta_denominator_cols,
    beta_denominator_rows,
    beta_divergence_terms,
)


def test_dense_products_are_batched(monkeypatch):
    """W_i H_j is formed a batch of rows at a time: results do not depend on the batch."""
    rng = np.random.default_rng(0)
    w, h = rng.random((50, 3)), rng.random((3, 30))
    tile = sp.csr_matrix(rng.random((50, 30)) * (rng.random((50, 30)) < 0.3))
    full = beta_divergence_terms(w, h, tile, 0.5)
    monkeypatch.setattr("dasknmf.kernels.beta.DENSE_BATCH", 30 * 7)  # 7 rows per batch
    np.testing.assert_allclose(beta_divergence_terms(w, h, tile, 0.5), full)
    np.testing.assert_allclose(
        beta_denominator_rows(w, h, 0.5), ((w @ h) ** -0.5) @ h.T, rtol=1e-12
    )
    np.testing.assert_allclose(
        beta_denominator_cols(w, h, 0.5), w.T @ ((w @ h) ** -0.5), rtol=1e-12
    )
