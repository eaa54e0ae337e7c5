"""Products of one tile with a factor block, and the small reductions around them.

``V`` tiles are ``r × c`` (dense or CSR), ``W`` blocks ``r × k``, ``H`` blocks
``k × c``; the other kernel modules build on these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dasknmf.devices import array_module

#: Replaces exact zeros in multiplicative-update denominators (scikit-learn's choice:
#: a zero denominator means a zero numerator too, so the entry simply stays at zero).
EPSILON = float(np.finfo(np.float32).eps)

Array = Any  # a dense ndarray of NumPy or CuPy
Tile = Any  # a dense ndarray or a CSR matrix (SciPy or cupyx)


def is_sparse(x: object) -> bool:
    """Whether *x* is a SciPy or cupyx sparse matrix (duck-typed on ``tocsr``)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


#: From this many factor columns on (a stacked rank sweep), a SciPy CSR tile's products
#: run in :mod:`dasknmf.kernels.jit`'s compiled loops: same numbers, 1.3–1.5× faster
#: at a few hundred columns, equal near 100 (docs/benchmarks.md).
WIDE = 128

#: Bytes of float64 products :func:`row_inner` forms at once.
ROW_INNER_BYTES = 8 * 2**20


def _compiled(tile: Tile, factor: Array, k: int) -> bool:
    """Whether ``tile``'s product with a factor of ``k`` components goes through the
    compiled loops: a SciPy CSR tile, a NumPy float factor, ``k ≥ WIDE``."""
    return (
        k >= WIDE
        and isinstance(factor, np.ndarray)
        and type(tile).__module__.startswith("scipy.sparse")
        and getattr(tile, "format", None) == "csr"
        and np.result_type(tile.dtype, factor.dtype).kind == "f"
    )


def tile_times_ht(tile: Tile, h: Array) -> Array:
    """``V_ij @ H_jᵀ``, the tile's share of the W-update numerator ``V Hᵀ`` (``r × k``)."""
    if _compiled(tile, h, h.shape[0]):
        from dasknmf.kernels.jit import csr_times_dense

        return csr_times_dense(tile, h.T)
    out = tile @ h.T
    return out if not is_sparse(out) else out.toarray()


def wt_times_tile(w: Array, tile: Tile) -> Array:
    """``W_iᵀ @ V_ij``, the tile's share of the H-update numerator ``Wᵀ V`` (``k × c``)."""
    if _compiled(tile, w, w.shape[1]):
        from dasknmf.kernels.jit import csr_t_times_dense

        return csr_t_times_dense(tile, w).T
    if is_sparse(tile):
        # CSR.T is CSC: the product scatters into a c × k result, far cheaper than
        # converting the tile to CSC first (docs/benchmarks.md).
        return (tile.T @ w).T
    return w.T @ tile


def aligned(x: Array) -> Array:
    """``x``, or a copy of it where its address is not a multiple of its itemsize.

    A block that distributed received from another process may sit at such an
    address; NumPy then multiplies ``x.T @ x`` by gemm on two buffered copies where
    it would have used syrk on ``x`` itself, which rounds differently in float32. A
    Gram matrix therefore takes the same path wherever its block came from, and a fit
    gives the same bits whichever blocks travelled (after a re-root, on resume).
    """
    return x if getattr(x.flags, "aligned", True) else x.copy()


def gram_rows(w: Array) -> Array:
    """``Wᵀ W`` for a row block of W (``k × k``)."""
    w = aligned(w)
    return w.T @ w


def gram_cols(h: Array) -> Array:
    """``H Hᵀ`` for a column block of H (``k × k``)."""
    h = aligned(h)
    return h @ h.T


def inner(a: Array, b: Array) -> np.ndarray:
    """``Σ a ∘ b`` accumulated in float64, as a 0-d NumPy array."""
    return np.asarray(float((a.astype(np.float64, copy=False) * b).sum()))


def row_inner(a: Array, b: Array) -> np.ndarray:
    """``Σ_j a_ij b_ij`` for each row ``i``, accumulated in float64 (on the host).

    Taken a slab of rows at a time: the float64 product of a rank sweep's stacked
    ``H`` (``Σk × n``) whole would be twice the factor, twice over. Each row is summed
    alone either way, so the slabs change no bit.
    """
    xp = array_module(a, b)
    step = max(1, ROW_INNER_BYTES // max(8 * a.shape[1], 1))
    out = xp.empty(a.shape[0], dtype=np.float64)
    for start in range(0, a.shape[0], step):
        rows = slice(start, start + step)
        out[rows] = (a[rows].astype(np.float64, copy=False) * b[rows]).sum(axis=1)
    return np.asarray(out.get() if hasattr(out, "get") else out)
