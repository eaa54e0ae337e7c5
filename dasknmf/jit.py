"""Compiled inner loops (numba) for the per-tile kernels that NumPy cannot vectorise well.

Only :mod:`dasknmf.kernels` calls these, and only for NumPy inputs (other array
modules take the kernels' vectorised path). Each loop releases the GIL, so dask's
threads run them in parallel, and is compiled once per dtype signature on first use
(cached on disk).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _sddmm_csr(indptr, indices, w, ht, out):  # pragma: no cover - compiled
    k = w.shape[1]
    for i in range(indptr.size - 1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            acc = out.dtype.type(0)
            for a in range(k):
                acc += w[i, a] * ht[j, a]
            out[p] = acc
    return out


def sddmm_csr(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(w @ h)[i, j]`` for every stored entry ``(i, j)`` of a CSR structure, in
    storage order: the sampled dense-dense product, O(nnz · k) with no scratch."""
    dtype = np.result_type(w, h)
    return _sddmm_csr(
        indptr,
        indices,
        np.ascontiguousarray(w, dtype=dtype),
        np.ascontiguousarray(h.T, dtype=dtype),
        np.empty(indices.size, dtype=dtype),
    )
