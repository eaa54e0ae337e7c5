"""Compiled inner loops (numba) for the per-tile kernels that NumPy cannot vectorise well.

:mod:`dasknmf.kernels.sampled` calls the sampled product, and
:mod:`dasknmf.kernels.tiles` the sparse × dense products for wide factors (a stacked
rank sweep), only for NumPy inputs (other array modules take the vectorised path).
Each loop releases the GIL, so dask's threads run them in parallel, and is compiled
once per dtype signature on first use (cached on disk).

numba is imported on first use, not with dasknmf: it adds tens of MB to a process
and time to its start, which a worker running only the Frobenius solvers never needs
(a worker's memory limit is measured from its baseline; docs/benchmarks.md).
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _sddmm_csr_loop(indptr, indices, w, ht, out):  # pragma: no cover - compiled
    k = w.shape[1]
    for i in range(indptr.size - 1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            acc = out.dtype.type(0)
            for a in range(k):
                acc += w[i, a] * ht[j, a]
            out[p] = acc
    return out


@cache
def _compiled_sddmm():
    import numba

    return numba.njit(nogil=True, cache=True)(_sddmm_csr_loop)


def sddmm_csr(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(w @ h)[i, j]`` for every stored entry ``(i, j)`` of a CSR structure, in
    storage order: the sampled dense-dense product, O(nnz · k) with no scratch."""
    dtype = np.result_type(w, h)
    return _compiled_sddmm()(
        indptr,
        indices,
        np.ascontiguousarray(w, dtype=dtype),
        np.ascontiguousarray(h.T, dtype=dtype),
        np.empty(indices.size, dtype=dtype),
    )


def _csr_times_dense_loop(indptr, indices, data, b, out):  # pragma: no cover - compiled
    acc = np.zeros(b.shape[1], dtype=out.dtype)
    for i in range(indptr.size - 1):
        acc[:] = 0
        for p in range(indptr[i], indptr[i + 1]):
            row = b[indices[p]]
            a = data[p]
            for c in range(row.size):
                acc[c] += a * row[c]
        out[i] = acc
    return out


def _csr_t_times_dense_loop(indptr, indices, data, w, out):  # pragma: no cover - compiled
    for i in range(indptr.size - 1):
        wi = w[i]
        for p in range(indptr[i], indptr[i + 1]):
            o = out[indices[p]]
            a = data[p]
            for c in range(wi.size):
                o[c] += a * wi[c]
    return out


@cache
def _compiled_products():
    import numba

    jit = numba.njit(nogil=True, cache=True)
    return jit(_csr_times_dense_loop), jit(_csr_t_times_dense_loop)


def csr_times_dense(tile, b: np.ndarray) -> np.ndarray:
    """``tile @ b`` for a SciPy CSR ``tile`` (``r × c``) and a dense ``b`` (``c × K``).

    The same additions in the same order as SciPy's (so the same numbers, to the
    bit), but each output row is accumulated in a contiguous buffer the compiler
    vectorises over ``K``: 1.3–1.5× SciPy's loop at ``K`` in the hundreds
    (docs/benchmarks.md), and the GIL is released.
    """
    dtype = np.result_type(tile.dtype, b.dtype)
    loop, _ = _compiled_products()
    return loop(
        tile.indptr,
        tile.indices,
        tile.data.astype(dtype, copy=False),
        np.ascontiguousarray(b, dtype=dtype),
        np.empty((tile.shape[0], b.shape[1]), dtype=dtype),
    )


def csr_t_times_dense(tile, w: np.ndarray) -> np.ndarray:
    """``tileᵀ @ w`` (``c × K``) for a SciPy CSR ``tile`` (``r × c``) and a dense ``w``
    (``r × K``): SciPy's additions in SciPy's order, vectorised over ``K``."""
    dtype = np.result_type(tile.dtype, w.dtype)
    _, loop = _compiled_products()
    return loop(
        tile.indptr,
        tile.indices,
        tile.data.astype(dtype, copy=False),
        np.ascontiguousarray(w, dtype=dtype),
        np.zeros((tile.shape[1], w.shape[1]), dtype=dtype),
    )
