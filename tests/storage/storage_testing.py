"""Helpers shared by the storage and ingest tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def random_sparse(
    m: int, n: int, density: float, seed: int = 0, dtype=np.float64
) -> sp.csr_matrix:
    """A reproducible CSR matrix with strictly positive non-zeros."""
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=dtype)
    X.data = (X.data + 0.5).astype(dtype)  # no accidental explicit zeros
    return X


def as_dense(result) -> np.ndarray:
    """A computed store (csr_matrix or ndarray) as a dense ndarray."""
    return result.toarray() if sp.issparse(result) else np.asarray(result)
