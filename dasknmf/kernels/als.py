"""Per-tile math of alternating non-negative least squares over observed entries.

With ``H`` fixed, the squared error over the observed set ``Ω`` separates by rows of
``W``: row ``i`` solves its own small problem ::

    min_{w ≥ 0}  ½ Σ_{j ∈ Ω_i} (v_ij − w · h_j)² + l1 Σ w + ½ (l2 + λ n_i) ‖w‖²

(``n_i = |Ω_i|``; ``λ`` is the weighted-λ of ALS-WR and Spark, ``l1``/``l2`` the
elastic net), whose normal equations need the row's own ``k × k`` Gram
``G_i = Σ_{j ∈ Ω_i} h_j h_jᵀ`` and right-hand side ``b_i = Σ_{j ∈ Ω_i} v_ij h_j``,
accumulated tile by tile: O(nnz · k²) per half-sweep. Columns of ``H`` are the
transpose: a tile adds ``w_i w_iᵀ`` to the Gram of each column it observes, and the
per-tile Grams are summed over row blocks as ``(k² + k + 1) × c`` partials
(Gram, right-hand side, count, stacked; :func:`pack_cols`).

Each small problem is solved exactly by an active-set method on its Gram (Lawson and
Hanson's NNLS in the normal-equation form of Bro and De Jong), warm-started from the
current factor's passive set, so a sweep usually costs one Cholesky solve per row.
The loops are compiled with numba (as :mod:`dasknmf.kernels.jit`), accumulate in
float64 and release the GIL; CuPy blocks are brought to the host and back.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.sparse as sp

from dasknmf import devices
from dasknmf.kernels.penalty import Penalty
from dasknmf.kernels.tiles import Array, Tile, is_sparse

__all__ = [
    "cols_terms",
    "h_terms",
    "nnls_gram",
    "observed_csr",
    "pack_cols",
    "row_pass",
    "update_cols",
    "update_rows",
]

#: Rows of a row block whose ``k × k`` Grams are held at once (bounds a task's scratch
#: to about ``ROW_BATCH_FLOATS`` float64 numbers).
ROW_BATCH_FLOATS = 4_000_000


# -- compiled loops ----------------------------------------------------------------------


def _accumulate_loop(
    indptr, indices, data, factor, r0, r1, by_row, G, b, counts
):  # pragma: no cover
    """For the CSR rows ``r0:r1``: add each observed ``(i, j, v)``'s outer product
    ``f fᵀ`` (lower triangle), ``v f`` and 1 to the Gram, right-hand side and count
    of its row ``i − r0`` (``by_row``, ``f = factor[j]``: ``Hᵀ``'s row) or of its
    column ``j`` (``f = factor[i]``: ``W``'s row)."""
    k = factor.shape[1]
    for i in range(r0, r1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            t, s = (i - r0, j) if by_row else (j, i)
            v = data[p]
            for a in range(k):
                x = factor[s, a]
                b[t, a] += v * x
                for c in range(a + 1):
                    G[t, a, c] += x * factor[s, c]
            counts[t] += 1.0


def _cholesky_solve_py(A, rhs, idx, n, L, z):  # pragma: no cover - compiled
    """``z[:n] = A[idx, idx]⁻¹ rhs[idx]`` by Cholesky of the lower triangle; a
    pivot that is not positive (a singular subsystem) is floored to a tiny ridge."""
    scale = 0.0
    for a in range(n):
        scale = max(scale, A[idx[a], idx[a]])
    floor = max(scale, 1e-300) * 1e-13
    for a in range(n):
        for c in range(a + 1):
            s = A[idx[a], idx[c]]
            for q in range(c):
                s -= L[a, q] * L[c, q]
            if a == c:
                L[a, a] = np.sqrt(s) if s > floor else np.sqrt(floor)
            else:
                L[a, c] = s / L[c, c]
    for a in range(n):
        s = rhs[idx[a]]
        for q in range(a):
            s -= L[a, q] * z[q]
        z[a] = s / L[a, a]
    for a in range(n - 1, -1, -1):
        s = z[a]
        for q in range(a + 1, n):
            s -= L[q, a] * z[q]
        z[a] = s / L[a, a]


def _nnls_one_py(A, rhs, x, passive, idx, L, z):  # pragma: no cover - compiled
    """Exact ``min_{x ≥ 0} ½ xᵀAx − rhsᵀx`` (``A`` symmetric positive semi-definite,
    lower triangle filled) by Lawson and Hanson's active set, started from the
    passive set ``x > 0`` of the feasible ``x`` given; ``x`` is overwritten."""
    k = rhs.size
    scale = 1e-300
    for a in range(k):
        scale = max(scale, abs(rhs[a]), A[a, a] * x[a])
    tol = 1e-13 * scale
    started = False
    for a in range(k):
        passive[a] = x[a] > 0
        started = started or passive[a]
    for _ in range(3 * k + 10):
        if not started:
            # Add the active variable whose gradient most wants it to grow, or stop:
            # the optimality conditions hold.
            best, enter = tol, -1
            for a in range(k):
                if passive[a]:
                    continue
                s = rhs[a]
                for c in range(k):
                    s -= A[max(a, c), min(a, c)] * x[c]
                if s > best:
                    best, enter = s, a
            if enter < 0:
                return
            passive[enter] = True
        started = False
        for _inner in range(k + 1):
            n = 0
            for a in range(k):
                if passive[a]:
                    idx[n] = a
                    n += 1
            if n == 0:
                for a in range(k):
                    x[a] = 0.0
                break
            _cholesky_solve(A, rhs, idx, n, L, z)
            alpha, drop = 1.0, -1
            for q in range(n):
                if z[q] <= 0:
                    xa = x[idx[q]]
                    step = xa / (xa - z[q]) if xa > 0 else 0.0
                    if step < alpha or drop < 0:
                        alpha, drop = min(step, alpha), q
            if drop < 0:
                for a in range(k):
                    x[a] = 0.0
                for q in range(n):
                    x[idx[q]] = z[q]
                break
            # Move from x towards z until the first passive variable reaches zero;
            # it (and any other at zero) becomes active.
            for q in range(n):
                a = idx[q]
                x[a] += alpha * (z[q] - x[a])
                if q == drop or x[a] <= 0:
                    x[a] = 0.0
                    passive[a] = False


def _nnls_batch_loop(G, b, lam, l1, x):  # pragma: no cover - compiled
    p, k = b.shape
    A = np.empty((k, k))
    rhs = np.empty(k)
    xi = np.empty(k)
    passive = np.zeros(k, dtype=np.bool_)
    idx = np.empty(k, dtype=np.int64)
    L = np.empty((k, k))
    z = np.empty(k)
    for i in range(p):
        for a in range(k):
            for c in range(a + 1):
                A[a, c] = G[i, a, c]
            A[a, a] += lam[i]
            rhs[a] = b[i, a] - l1
            xi[a] = x[i, a]
        _nnls_one(A, rhs, xi, passive, idx, L, z)
        for a in range(k):
            x[i, a] = xi[a]


# The batch loop calls the two helpers by these global names; compiling rebinds them
# to their compiled versions first (numba resolves a called global when compiling).
_cholesky_solve, _nnls_one = _cholesky_solve_py, _nnls_one_py


@cache
def _compiled(name: str):
    import numba

    global _cholesky_solve, _nnls_one
    jit = numba.njit(nogil=True, cache=True)
    if name == "nnls":
        _cholesky_solve = jit(_cholesky_solve_py)
        _nnls_one = jit(_nnls_one_py)
        return jit(_nnls_batch_loop)
    return jit(_accumulate_loop)


# -- per-tile and per-block functions ------------------------------------------------------


def observed_csr(tile: Tile) -> sp.csr_matrix:
    """The observed entries of a tile as a SciPy CSR matrix: a sparse tile's stored
    entries (explicit zeros included), a dense tile's non-NaN entries."""
    tile = devices.block_to_host(tile)
    if is_sparse(tile):
        return tile.tocsr()
    seen = ~np.isnan(tile)
    rows, cols = np.nonzero(seen)
    return sp.csr_matrix((tile[seen], (rows, cols)), shape=tile.shape)


def _parts(csr: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        csr.indptr.astype(np.int64, copy=False),
        csr.indices.astype(np.int64, copy=False),
        csr.data.astype(np.float64, copy=False),
    )


def nnls_gram(G: np.ndarray, b: np.ndarray, lam: np.ndarray, l1: float, x0: np.ndarray):
    """``argmin_{x ≥ 0} ½ xᵀ(G_p + lam_p I)x − (b_p − l1)ᵀx`` for each ``p``.

    ``G`` is ``p × k × k`` (its lower triangles are read), ``b`` and ``x0`` are
    ``p × k``, ``lam`` has ``p`` entries; ``x0`` (non-negative) is the warm start.
    Returns a new float64 ``p × k`` array.
    """
    x = np.array(x0, dtype=np.float64, order="C")
    np.maximum(x, 0.0, out=x)
    _compiled("nnls")(
        np.ascontiguousarray(G, dtype=np.float64),
        np.ascontiguousarray(b, dtype=np.float64),
        np.ascontiguousarray(lam, dtype=np.float64),
        float(l1),
        x,
    )
    return x


def update_rows(penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], _g=None) -> Array:
    """The exact non-negative least-squares rows of a row block of ``W`` over the
    observed entries of its tiles, ``H`` fixed (warm-started from ``w``)."""
    host_w = devices.block_to_host(w)
    r, k = host_w.shape
    parts = [_parts(observed_csr(t)) for t in tiles]
    hts = [np.ascontiguousarray(devices.block_to_host(h).T, dtype=np.float64) for h in hs]
    out = np.empty((r, k), dtype=np.float64)
    batch = max(1, ROW_BATCH_FLOATS // (k * k + k + 1))
    accumulate = _compiled("accumulate")
    for r0 in range(0, r, batch):
        r1 = min(r, r0 + batch)
        G = np.zeros((r1 - r0, k, k))
        b = np.zeros((r1 - r0, k))
        counts = np.zeros(r1 - r0)
        for (indptr, indices, data), ht in zip(parts, hts, strict=True):
            accumulate(indptr, indices, data, ht, r0, r1, True, G, b, counts)
        lam = penalty.l2 + penalty.l2_weighted * counts
        out[r0:r1] = nnls_gram(G, b, lam, penalty.l1, host_w[r0:r1])
    return _like(w, out)


def cols_terms(w: Array, tile: Tile) -> Array:
    """One tile's share of the column problems of ``H``: ``(k² + k + 1) × c``, per
    column the Gram ``Σ_{i ∈ Ω_j} w_i w_iᵀ`` (row-major, lower triangle), the
    right-hand side ``Σ v_ij w_i`` and the count ``|Ω_j|``, stacked."""
    host_w = np.ascontiguousarray(devices.block_to_host(w), dtype=np.float64)
    k, c = host_w.shape[1], tile.shape[1]
    G, b, counts = np.zeros((c, k, k)), np.zeros((c, k)), np.zeros(c)
    indptr, indices, data = _parts(observed_csr(tile))
    r = indptr.size - 1
    _compiled("accumulate")(indptr, indices, data, host_w, 0, r, False, G, b, counts)
    return _like(w, pack_cols(G, b, counts))


def pack_cols(G: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(G, b, counts)`` of ``c`` columns stacked as one ``(k² + k + 1) × c`` array
    (a partial that adds up over row blocks)."""
    c, k = b.shape
    return np.vstack([G.reshape(c, k * k).T, b.T, counts[None, :]])


def h_terms(w: Array, tiles: list[Tile], hs: list[Array], _g=None) -> tuple:
    """A row block's partials of the ``H`` problems, one per tile, and a placeholder
    ``1 × 1`` small matrix (the layout of :func:`dasknmf.products.row_block_pass`)."""
    one = np.zeros((1, 1), dtype=np.float64)
    return w, [cols_terms(w, t) for t in tiles], _like(w, one)


def row_pass(penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], _g=None) -> tuple:
    """The row block's new ``W`` rows and, from them, its partials of the ``H``
    problems: one read of the tiles for a whole sweep's use of them."""
    return h_terms(update_rows(penalty, w, tiles, hs), tiles, hs)


def update_cols(penalty: Penalty, h: Array, stacked: Array) -> Array:
    """The exact non-negative least-squares columns of a column block of ``H`` from
    the summed ``(k² + k + 1) × c`` partials (warm-started from ``h``)."""
    host_h = devices.block_to_host(h)
    k, c = host_h.shape
    s = np.asarray(devices.block_to_host(stacked), dtype=np.float64)
    G = np.ascontiguousarray(s[: k * k].T).reshape(c, k, k)
    b = s[k * k : k * k + k].T
    lam = penalty.l2 + penalty.l2_weighted * s[-1]
    return _like(h, nnls_gram(G, b, lam, penalty.l1, host_h.T).T)


def _like(ref: Array, x: np.ndarray) -> Array:
    """``x`` in ``ref``'s dtype, on ``ref``'s device."""
    out = np.ascontiguousarray(x, dtype=ref.dtype)
    return out if isinstance(ref, np.ndarray) else devices.block_to_device(out)
