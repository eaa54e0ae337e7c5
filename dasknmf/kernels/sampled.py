"""``W_i H_j`` at a sparse tile's stored entries: the sampled product (SDDMM).

The Kullback–Leibler, β-divergence and masked updates need ``WH`` only where ``V`` is
stored; these kernels compute it there without forming ``W_i H_j``.
"""

from __future__ import annotations

import numpy as np

from dasknmf.devices import array_module
from dasknmf.kernels.jit import sddmm_csr
from dasknmf.kernels.tiles import Array, Tile, is_sparse


def wh_at_nonzeros(w: Array, h: Array, tile: Tile) -> tuple[Tile, Array]:
    """``(V_ij, (W_i H_j)[V_ij stored])``: the tile as CSR, and ``W_i H_j`` at its
    stored entries in storage order (aligned with ``.data``); a dense tile gives
    itself and ``W_i H_j``.

    The sampled product (SDDMM) is a compiled loop for NumPy inputs (many times
    faster than gathering ``nnz × k`` blocks and reducing them with einsum;
    ``docs/benchmarks.md``), else :func:`sampled_product`.
    """
    if not is_sparse(tile):
        return tile, w @ h
    tile = tile.tocsr()
    if array_module(w, h, tile) is np:
        return tile, sddmm_csr(tile.indptr, tile.indices, w, h)
    return tile, sampled_product(w, h, tile)


def sampled_product(w: Array, h: Array, tile: Tile) -> Array:
    """``W_i H_j`` at a CSR tile's stored entries with array operations only (any
    array module): one column of ``W`` and one row of ``H`` gathered at a time, k
    passes over contiguous vectors with O(nnz) scratch."""
    xp = array_module(w, h, tile)
    # Row of each stored entry: CuPy's repeat takes no array of counts, searchsorted
    # works in both modules.
    positions = xp.arange(tile.nnz, dtype=tile.indptr.dtype)
    rows = xp.searchsorted(tile.indptr, positions, side="right") - 1
    cols = tile.indices
    dtype = xp.result_type(w, h)
    wt = w.T.astype(dtype, order="C")  # one contiguous row per component
    h = h.astype(dtype, copy=False)
    out = xp.take(wt[0], rows)
    out *= xp.take(h[0], cols)
    w_a, h_a = xp.empty_like(out), xp.empty_like(out)
    for a in range(1, w.shape[1]):
        xp.take(wt[a], rows, out=w_a)
        xp.take(h[a], cols, out=h_a)
        w_a *= h_a
        out += w_a
    return out


def with_values(tile: Tile, values: Array) -> Tile:
    """A CSR tile with ``tile``'s structure and new ``values``."""
    return type(tile)((values, tile.indices, tile.indptr), shape=tile.shape)
