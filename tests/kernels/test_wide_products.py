"""The compiled sparse × dense products for wide factors equal SciPy's to the bit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.kernels import tiles
from dasknmf.kernels.jit import csr_t_times_dense, csr_times_dense


@pytest.fixture
def tile():
    X = sp.random(90, 70, density=0.15, format="lil", random_state=1)
    X[5, :] = 0  # an empty row
    return X.tocsr()


@pytest.mark.parametrize(
    ("tile_dtype", "factor_dtype"),
    [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64)],
)
def test_compiled_products_are_scipys_to_the_bit(tile, tile_dtype, factor_dtype):
    X = tile.astype(tile_dtype)
    rng = np.random.default_rng(0)
    b = rng.random((70, 130)).astype(factor_dtype)
    w = rng.random((90, 130)).astype(factor_dtype)
    got = csr_times_dense(X, b)
    assert got.dtype == (X @ b).dtype
    np.testing.assert_array_equal(got, X @ b)
    np.testing.assert_array_equal(csr_t_times_dense(X, w), X.T @ w)


def test_tile_products_take_the_compiled_loops_from_wide_on(tile, monkeypatch):
    calls = []
    import dasknmf.kernels.jit as jit

    original = jit.csr_times_dense
    monkeypatch.setattr(jit, "csr_times_dense", lambda *a: calls.append(1) or original(*a))
    rng = np.random.default_rng(2)
    narrow, wide = rng.random((tiles.WIDE - 1, 70)), rng.random((tiles.WIDE, 70))
    np.testing.assert_array_equal(tiles.tile_times_ht(tile, narrow), tile @ narrow.T)
    assert calls == []
    np.testing.assert_array_equal(tiles.tile_times_ht(tile, wide), tile @ wide.T)
    assert calls == [1]
    # Other formats keep SciPy's product.
    np.testing.assert_allclose(tiles.tile_times_ht(tile.tocsc(), wide), tile @ wide.T)
    assert calls == [1]
    w = rng.random((90, tiles.WIDE))
    np.testing.assert_array_equal(tiles.wt_times_tile(w, tile), (tile.T @ w).T)
