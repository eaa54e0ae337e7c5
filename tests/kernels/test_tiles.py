"""Products of a tile with a factor block, dense or sparse, against dense arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.kernels.tiles import inner, tile_times_ht, wt_times_tile
from tests.helpers import make_matrix


@pytest.fixture(params=["sparse", "dense"])
def tile(request):
    return make_matrix(9, 6, density=0.4, kind=request.param)


def test_tile_times_ht_matches_dense(tile):
    h = np.random.default_rng(0).random((3, 6))
    np.testing.assert_allclose(
        tile_times_ht(tile, h), np.asarray(sp.csr_matrix(tile).toarray()) @ h.T
    )


def test_wt_times_tile_matches_dense(tile):
    w = np.random.default_rng(0).random((9, 3))
    expected = w.T @ sp.csr_matrix(tile).toarray()
    out = wt_times_tile(w, tile)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected)


def test_inner_is_float64():
    a = np.full((1000, 100), 1e-3, dtype=np.float32)
    assert inner(a, a).dtype == np.float64
    np.testing.assert_allclose(float(inner(a, a)), 1e5 * 1e-6, rtol=1e-6)
