"""Compiled inner loops (numba) for the per-tile kernels that NumPy cannot vectorise well.

Only :mod:`dasknmf.kernels.sampled` calls these, and only for NumPy inputs (other
array modules take its vectorised path). Each loop releases the GIL, so dask's
threads run them in parallel, and is compiled once per dtype signature on first use
(cached on disk).

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
