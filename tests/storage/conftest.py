"""Fixtures and helpers for the storage tests: small deterministic matrices."""

from __future__ import annotations

import pytest
import scipy.sparse as sp

from dasknmf.storage.reader import clear_cache
from tests.storage.storage_testing import random_sparse


@pytest.fixture(autouse=True)
def _fresh_handle_cache():
    # Tests rewrite stores at the same paths; start each from an empty handle cache.
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def sparse_matrix() -> sp.csr_matrix:
    """70 x 45 CSR, density 0.1, with an all-zero band of rows and of columns."""
    X = random_sparse(70, 45, 0.1, seed=1).tolil()
    X[20:40, :] = 0  # empty tiles with 10-row tiles
    X[:, 30:45] = 0
    return X.tocsr()
