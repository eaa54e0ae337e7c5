"""Deterministic test matrices and factors shared by the engine tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def make_matrix(
    m: int, n: int, *, density: float = 0.2, seed: int = 0, kind: str = "sparse", dtype=np.float64
):
    """A deterministic non-negative test matrix (CSR for kind='sparse', else ndarray)."""
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.round(X.data * 5, 2) + 0.01
    X = X.astype(dtype)
    return X if kind == "sparse" else X.toarray()


def make_factors(m: int, n: int, k: int, *, seed: int = 1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.random((m, k)).astype(dtype) + 0.1, rng.random((k, n)).astype(dtype) + 0.1


#: Tilings of a 37 × 23 matrix: one tile, many, ragged last tiles, single-row tiles.
CHUNKINGS = [(37, 23), (10, 7), (13, 23), (1, 23), (37, 5)]
