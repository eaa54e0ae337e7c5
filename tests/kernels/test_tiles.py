"""Products of a tile with a factor block, dense or sparse, against dense arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.kernels import tiles
from dasknmf.kernels.stack import Stack
from dasknmf.kernels.tiles import gram_cols, gram_rows, inner, tile_times_ht, wt_times_tile
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


def unaligned(x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` one byte past an aligned address, as distributed may leave a
    block that it received from another process."""
    buffer = bytearray(x.nbytes + 1)
    out = np.frombuffer(buffer, dtype=x.dtype, offset=1, count=x.size).reshape(x.shape)
    out[...] = x
    assert not out.flags.aligned
    return out


def test_a_gram_matrix_has_the_same_bits_from_an_unaligned_block():
    """NumPy multiplies an unaligned block by gemm on copies, an aligned one by syrk:
    in float32 they differ in the last bits (checked here), the kernels do not."""
    h = np.random.default_rng(0).random((12, 1000), dtype=np.float32)
    w = np.ascontiguousarray(h.T)
    assert not np.array_equal(unaligned(h) @ unaligned(h).T, h @ h.T)
    np.testing.assert_array_equal(gram_cols(unaligned(h)), gram_cols(h))
    np.testing.assert_array_equal(gram_rows(unaligned(w)), gram_rows(w))
    stack = Stack((5, 7))
    np.testing.assert_array_equal(stack.gram_cols(unaligned(h)), stack.gram_cols(h))
    np.testing.assert_array_equal(stack.gram_rows(unaligned(w)), stack.gram_rows(w))


def test_row_inner_in_slabs_changes_no_bit(monkeypatch):
    rng = np.random.default_rng(8)
    a, b = rng.random((37, 500), dtype=np.float32), rng.random((37, 500), dtype=np.float32)
    whole = (a.astype(np.float64) * b).sum(axis=1)
    monkeypatch.setattr(tiles, "ROW_INNER_BYTES", 5 * 500 * 8)  # slabs of 5 rows
    np.testing.assert_array_equal(tiles.row_inner(a, b), whole)
