from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf import products
from tests.helpers import CHUNKINGS, make_factors, make_matrix


def tiled(X, chunks):
    return da.from_array(X, chunks=chunks, asarray=False)


@pytest.fixture(params=CHUNKINGS, ids=lambda c: f"tiles{c[0]}x{c[1]}")
def case(request, kind):
    X = make_matrix(37, 23, kind=kind)
    W, H = make_factors(37, 23, 4)
    rows, cols = request.param
    V = tiled(X, request.param)
    Wd = da.from_array(W, chunks=(rows, 4))
    Hd = da.from_array(H, chunks=(4, cols))
    return (X.toarray() if sp.issparse(X) else X), V, W, H, Wd, Hd


def test_v_times_ht(case):
    X, V, _W, H, _Wd, Hd = case
    out = products.v_times_ht(V, Hd)
    assert out.chunks == (V.chunks[0], (4,))
    np.testing.assert_allclose(out.compute(), X @ H.T)


def test_wt_times_v(case):
    X, V, W, _H, Wd, _Hd = case
    out = products.wt_times_v(Wd, V)
    assert out.chunks == ((4,), V.chunks[1])
    np.testing.assert_allclose(out.compute(), W.T @ X)


def test_grams_and_small_products(case):
    _X, _V, W, H, Wd, Hd = case
    np.testing.assert_allclose(products.gram_rows(Wd).compute(), W.T @ W)
    np.testing.assert_allclose(products.gram_cols(Hd).compute(), H @ H.T)
    G = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(products.times_small(Wd, da.from_array(G)).compute(), W @ G)
    fn = lambda h, a, g: g @ h + a  # noqa: E731
    np.testing.assert_allclose(
        products.map_factor_blocks(fn, Hd, Hd, da.from_array(G)).compute(), G @ H + H
    )
    np.testing.assert_allclose(float(products.inner(Hd, Hd).compute()), (H * H).sum())


def test_map_row_blocks_hands_over_whole_rows(case):
    X, V, W, H, Wd, Hd = case

    def fn(w, tiles, hs, g):
        assert len(tiles) == len(hs) == V.numblocks[1]
        return w + sum(np.asarray(t @ h.T) for t, h in zip(tiles, hs, strict=True)) + g.sum()

    G = da.from_array(np.ones((4, 4)))
    out = products.map_row_blocks(fn, V, Wd, Hd, G)
    np.testing.assert_allclose(out.compute(), W + X @ H.T + 16.0)


def test_many_column_tiles_use_tree_reduction():
    X = make_matrix(10, 40, density=0.5)
    V = tiled(X, (5, 2))  # 20 column tiles > SPLIT_EVERY
    assert not products.few_column_tiles(V)
    H = np.random.default_rng(0).random((3, 40))
    out = products.v_times_ht(V, da.from_array(H, chunks=(3, 2)))
    np.testing.assert_allclose(out.compute(), X.toarray() @ H.T)


def test_tile_stats_summary(kind):
    X = make_matrix(37, 23, kind="dense")
    X[5, 6], X[30, 2], X[20, 20] = -3.0, -1.0, np.inf
    V = tiled(sp.csr_matrix(X) if kind == "sparse" else X, (10, 7))
    s = products.tile_stats(V).compute()
    finite = X[np.isfinite(X)]
    np.testing.assert_allclose(s[:2], [finite.sum(), (finite**2).sum()])
    assert s[2] == np.count_nonzero(X)
    assert (s[3], s[4]) == (2, 5 * 23 + 6)
    assert (s[5], s[6]) == (1, 20 * 23 + 20)
