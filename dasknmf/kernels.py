"""Per-tile math: the only place that touches the numbers inside one block.

Every function takes and returns arrays of a single array module (NumPy/SciPy on the
CPU, CuPy/cupyx on a GPU); the module is found from the inputs, never imported here
by name, so the same graph runs on either device. Nothing in this module knows about
dask: :mod:`dasknmf.products` wires these kernels into graphs.

Orientation: ``V`` tiles are ``r × c`` (dense or CSR), ``W`` blocks ``r × k``, ``H``
blocks ``k × c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dasknmf.devices import array_module, block_to_host
from dasknmf.jit import sddmm_csr

#: Replaces exact zeros in multiplicative-update denominators (scikit-learn's choice:
#: a zero denominator means a zero numerator too, so the entry simply stays at zero).
EPSILON = float(np.finfo(np.float32).eps)

Array = Any  # a dense ndarray of NumPy or CuPy
Tile = Any  # a dense ndarray or a CSR matrix (SciPy or cupyx)


def is_sparse(x: object) -> bool:
    """Whether *x* is a SciPy or cupyx sparse matrix (duck-typed on ``tocsr``)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def tile_times_ht(tile: Tile, h: Array) -> Array:
    """``V_ij @ H_jᵀ``, the tile's share of the W-update numerator ``V Hᵀ`` (``r × k``)."""
    out = tile @ h.T
    return out if not is_sparse(out) else out.toarray()


def wt_times_tile(w: Array, tile: Tile) -> Array:
    """``W_iᵀ @ V_ij``, the tile's share of the H-update numerator ``Wᵀ V`` (``k × c``)."""
    if is_sparse(tile):
        # CSR.T is CSC: the product scatters into a c × k result, 4× cheaper than
        # converting the tile to CSC first (see PERFORMANCE-NOTES).
        return (tile.T @ w).T
    return w.T @ tile


def gram_rows(w: Array) -> Array:
    """``Wᵀ W`` for a row block of W (``k × k``)."""
    return w.T @ w


def gram_cols(h: Array) -> Array:
    """``H Hᵀ`` for a column block of H (``k × k``)."""
    return h @ h.T


@dataclass(frozen=True)
class Penalty:
    """Elastic-net penalty ``l1 ‖X‖₁ + ½ l2 ‖X‖²`` on one factor, already scaled.

    In a multiplicative update it adds ``l1 + l2 · X`` to the denominator (scikit-learn's
    ``alpha_W``/``alpha_H``/``l1_ratio`` become these numbers in the estimator).
    """

    l1: float = 0.0
    l2: float = 0.0


NO_PENALTY = Penalty()


def mu_step(
    x: Array, numerator: Array, denominator: Array, penalty: Penalty = NO_PENALTY
) -> Array:
    """Multiplicative update ``x ∘ numerator / (denominator + l1 + l2 · x)``, a new array.

    Zero denominators become :data:`EPSILON`, so all-zero rows or columns of ``V``
    give zeros instead of NaN. ``denominator`` is consumed (overwritten).
    """
    if penalty.l1:
        denominator += penalty.l1
    if penalty.l2:
        denominator += penalty.l2 * x
    if not denominator.all():  # a cheap reduction; the masked write is rarely needed
        denominator[denominator == 0] = EPSILON
    out = array_module(denominator).divide(numerator, denominator, out=denominator)
    out *= x
    return out


# -- update rules ------------------------------------------------------------------
# A rule updates a tall factor block ``x`` (rows × k) from ``xht``, its rows of the
# data-times-other-factor product, and ``g``, the other factor's k × k Gram matrix:
# for W these are ``V_i Hᵀ`` and ``H Hᵀ``; for H (handled transposed, ``H_jᵀ``) they
# are ``(Wᵀ V)_jᵀ`` and ``Wᵀ W``. The same rule therefore serves both factors.


def mu_rule(x: Array, xht: Array, g: Array, penalty: Penalty = NO_PENALTY) -> Array:
    """Multiplicative update: ``x ∘ xht / (x g + l1 + l2 · x)``."""
    return mu_step(x, xht, x @ g, penalty)


def hals_rule(x: Array, xht: Array, g: Array, penalty: Penalty = NO_PENALTY) -> Array:
    """One sweep of HALS (coordinate descent over the k columns, in order).

    Column ``t`` moves to ``max(0, x_t − (x g_t − xht_t) / g_tt)``, using the columns
    already updated in this sweep: scikit-learn's ``solver="cd"`` with
    ``shuffle=False``, vectorised over rows (rows are independent). The penalty adds
    ``l2`` to the diagonal of ``g`` and subtracts ``l1`` from ``xht``. Columns are
    updated in a Fortran-ordered copy, where each is contiguous.
    """
    xp = array_module(x, g)
    g = g + penalty.l2 * xp.eye(g.shape[0], dtype=g.dtype) if penalty.l2 else g
    xht = xht - penalty.l1 if penalty.l1 else xht
    x = xp.array(x, order="F")
    # The diagonal on the host: on a GPU, testing each entry there would wait for the
    # device once per column.
    hessians = np.asarray(block_to_host(g.diagonal()))
    for t in range(x.shape[1]):
        hess = hessians[t]
        if hess != 0:
            grad = x @ g[:, t] - xht[:, t]
            xp.maximum(x[:, t] - grad / hess, 0.0, out=x[:, t])
    return xp.ascontiguousarray(x)


def update_rows(
    rule, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], hht: Array
) -> Array:
    """W-update of one row block from all its tiles: ``rule(W_i, Σ_j V_ij H_jᵀ, HHᵀ)``.

    One task per row block, so the row block's products and update run back to back
    on one worker without intermediate results crossing the scheduler.
    """
    numerator = tile_times_ht(tiles[0], hs[0])
    for tile, h in zip(tiles[1:], hs[1:], strict=True):
        numerator += tile_times_ht(tile, h)
    return rule(w, numerator, hht, penalty)


def row_pass(
    rule, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], hht: Array
) -> tuple[Array, list[Array], Array]:
    """One row block's whole share of an iteration, reading its tiles once.

    Updates ``W_i`` (:func:`update_rows`), then, with the new ``W_i``, returns the row
    block's contributions to the H update: ``W_iᵀ V_ij`` for each tile and
    ``W_iᵀ W_i``. Summed over row blocks these are exactly the ``WᵀV`` and ``WᵀW`` of
    the two-pass order, so the result is the same update sequence.
    """
    return h_update_terms(update_rows(rule, penalty, w, tiles, hs, hht), tiles)


def h_update_terms(
    w: Array, tiles: list[Tile], hs: object = None, g: object = None
) -> tuple[Array, list[Array], Array]:
    """A row block's contributions to the H update: ``W_iᵀ V_ij`` per tile and
    ``W_iᵀ W_i`` (``W_i`` returned unchanged; ``hs`` and ``g`` are not used)."""
    return w, [wt_times_tile(w, tile) for tile in tiles], gram_rows(w)


def update_cols(rule, penalty: Penalty, h: Array, wtv: Array, wtw: Array) -> Array:
    """H-update of one column block: ``rule`` on ``H_jᵀ`` with ``(WᵀV)_jᵀ`` and ``WᵀW``.

    Returns a Fortran-ordered ``k × c`` array (a C-ordered ``c × k`` one, transposed),
    the layout of :func:`wt_times_tile`'s output: elementwise work on matching layouts
    runs 2.5× faster, and ``H_jᵀ`` is then C-contiguous, as SciPy's sparse × dense
    product wants it (it copies anything else).
    """
    return rule(h.T, wtv.T, wtw, penalty).T


RULES = {"mu": mu_rule, "hals": hals_rule}


# -- Kullback–Leibler divergence -----------------------------------------------------
# The generalised KL divergence D(V ‖ WH) = Σ V log(V / WH) − Σ V + Σ WH needs WH only
# where V ≠ 0 (a sampled product) plus Σ WH = (1ᵀW)(H1). scikit-learn's conventions:
# WH below EPSILON counts as EPSILON, and entries of V ≤ EPSILON add nothing to the
# log term.


def wh_at_nonzeros(w: Array, h: Array, tile: Tile) -> tuple[Tile, Array]:
    """``(V_ij, (W_i H_j)[V_ij stored])``: the tile as CSR, and ``W_i H_j`` at its
    stored entries in storage order (aligned with ``.data``); a dense tile gives
    itself and ``W_i H_j``.

    The sampled product (SDDMM) is a compiled loop for NumPy inputs (8–12× faster
    than gathering ``nnz × k`` blocks and reducing them with einsum, measured in
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


def _with_values(tile: Tile, values: Array) -> Tile:
    """A CSR tile with ``tile``'s structure and new ``values``."""
    return type(tile)((values, tile.indices, tile.indptr), shape=tile.shape)


def kl_ratio(w: Array, h: Array, tile: Tile) -> Tile:
    """``V_ij / W_i H_j`` where ``V_ij ≠ 0`` (zero elsewhere), as a tile like ``V_ij``."""
    v, wh = wh_at_nonzeros(w, h, tile)
    xp = array_module(wh)
    xp.maximum(wh, EPSILON, out=wh)
    if not is_sparse(v):
        return xp.divide(v, wh, out=wh)
    return _with_values(v, v.data / wh)


def kl_divergence_terms(w: Array, h: Array, tile: Tile) -> np.ndarray:
    """``Σ V log(V / WH)`` over one tile's entries ``V > EPSILON`` (float64, 1 × 1)."""
    v, wh = wh_at_nonzeros(w, h, tile)
    xp = array_module(wh)
    values = xp.asarray(v.data if is_sparse(v) else v).ravel()
    wh = xp.asarray(wh).ravel()
    keep = values > EPSILON
    values, wh = values[keep].astype(np.float64), xp.maximum(wh[keep], EPSILON)
    return np.asarray([[float(values @ xp.log(values / wh))]])


def kl_update_rows(
    penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], h_sum: Array
) -> Array:
    """KL multiplicative update of a row block: ``W_i ∘ (Σ_j R_ij H_jᵀ) / (H 1)ᵀ``
    with ``R_ij = V_ij / W_i H_j`` at the non-zeros; ``h_sum`` is ``H``'s row sums
    as a ``1 × k`` matrix."""
    numerator = tile_times_ht(kl_ratio(w, hs[0], tiles[0]), hs[0])
    for tile, h in zip(tiles[1:], hs[1:], strict=True):
        numerator += tile_times_ht(kl_ratio(w, h, tile), h)
    denominator = array_module(w).broadcast_to(h_sum, w.shape).astype(w.dtype)
    return mu_step(w, numerator, denominator, penalty)


def kl_h_terms(
    w: Array, tiles: list[Tile], hs: list[Array], g: object = None
) -> tuple[Array, list[Array], Array]:
    """A row block's contributions to the KL H update: ``W_iᵀ R_ij`` per tile and the
    column sums of ``W_i`` (``1 × k``), ``W_i`` returned unchanged."""
    parts = [wt_times_tile(w, kl_ratio(w, h, tile)) for tile, h in zip(tiles, hs, strict=True)]
    return w, parts, w.sum(axis=0, keepdims=True)


def kl_row_pass(
    penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], h_sum: Array
) -> tuple[Array, list[Array], Array]:
    """The KL W update of a row block and, from the new ``W_i``, its H-side terms."""
    return kl_h_terms(kl_update_rows(penalty, w, tiles, hs, h_sum), tiles, hs)


def kl_update_cols(penalty: Penalty, h: Array, wt_r: Array, w_sum: Array) -> Array:
    """KL update of a column block of ``H``: ``H_j ∘ (Wᵀ R)_j / (1ᵀ W)ᵀ``, then
    entries below float64 epsilon set to zero (scikit-learn's stabilisation)."""
    xp = array_module(h, w_sum)
    w_sum = xp.where(w_sum == 0, 1.0, w_sum)  # scikit-learn's guard for empty components
    denominator = xp.broadcast_to(w_sum.reshape(-1, 1), h.shape).astype(h.dtype)
    out = mu_step(h, wt_r, denominator, penalty)
    out[out < np.finfo(np.float64).eps] = 0.0
    return out


def inner(a: Array, b: Array) -> np.ndarray:
    """``Σ a ∘ b`` accumulated in float64, as a 0-d NumPy array."""
    return np.asarray(float((a.astype(np.float64, copy=False) * b).sum()))


def tile_stats(
    tile: Tile, row0: int, col0: int, n_cols: int, nan_is_missing: bool = False
) -> np.ndarray:
    """Summary of one tile used for validation and scaling.

    Returns a float64 vector ``[sum, sum of squares, nnz, n_negative,
    first_negative, n_nonfinite, first_nonfinite, n_observed]`` where the ``first_*``
    entries are the row-major linear index ``row * n_cols + col`` of the first
    offending entry in the whole matrix (``inf`` if none), so a tree of ``min``
    reductions finds the first one overall. ``n_observed`` counts the stored entries
    of a sparse tile (explicit zeros included) or all entries of a dense one; with
    ``nan_is_missing``, NaN in a dense tile are missing entries: neither observed nor
    reported as non-finite (a NaN stored in a sparse tile still is).
    """
    tile = block_to_host(tile)  # once per fit: not worth a device version
    if is_sparse(tile):
        coo = tile.tocoo()
        values, rows, cols = coo.data, coo.row, coo.col
        n_observed = coo.nnz
    else:
        rows, cols = np.nonzero(tile)
        values = tile[rows, cols]
        n_observed = tile.size
        if nan_is_missing:
            seen = ~np.isnan(values)
            rows, cols, values = rows[seen], cols[seen], values[seen]
            n_observed -= int(np.count_nonzero(~seen))
    values = np.asarray(values)
    finite = np.isfinite(values)
    negative = values < 0
    stats = np.empty(8, dtype=np.float64)
    stats[7] = n_observed
    stats[0] = values[finite].sum(dtype=np.float64)
    stats[1] = np.square(values[finite], dtype=np.float64).sum()
    stats[2] = np.count_nonzero(values)
    stats[3] = np.count_nonzero(negative)
    stats[5] = values.size - np.count_nonzero(finite)

    def first(mask: np.ndarray) -> float:
        if not mask.any():
            return np.inf
        lin = (np.asarray(rows[mask], dtype=np.int64) + row0) * n_cols + (
            np.asarray(cols[mask], dtype=np.int64) + col0
        )
        return float(lin.min())

    stats[4] = first(negative)
    stats[6] = first(~finite)
    return stats


def kl_solve_w_block(
    w: Array,
    tiles: list[Tile],
    hs: list[Array],
    h_sum: Array,
    *,
    max_iter: int,
    stopping_rule,
    penalty: Penalty = NO_PENALTY,
) -> Array:
    """KL updates of one row block of ``W`` with ``H`` fixed (``transform``), stopped by
    ``stopping_rule(error_at_init)`` (a :class:`dasknmf.stopping.ToleranceRule` factory)
    on the block's own divergence."""
    total = sum(float(t.sum()) for t in tiles)

    def error(x: Array) -> float:
        log_terms = sum(
            float(kl_divergence_terms(x, h, t)[0, 0]) for t, h in zip(tiles, hs, strict=True)
        )
        res = log_terms - total + float(x.sum(axis=0) @ h_sum.ravel())
        return float(np.sqrt(2 * max(res, 0.0)))

    rule = stopping_rule(error(w))
    for it in range(1, max_iter + 1):
        w = kl_update_rows(penalty, w, tiles, hs, h_sum)
        if rule.is_check(it) and rule.converged(error(w)):
            break
    return w


# -- general beta-divergence (Itakura–Saito is beta = 0) -----------------------------
# For beta outside {1, 2} the denominators need (WH)^(beta−1) at every entry, not only
# at V's non-zeros: each tile computes W_i H_j densely, a batch of rows at a time.

#: Entries of a dense ``W_i H_j`` batch computed at once.
DENSE_BATCH = 1 << 21


def _row_batches(n_rows: int, n_cols: int):
    step = max(1, DENSE_BATCH // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def beta_gamma(beta: float) -> float:
    """scikit-learn's exponent of the MU step, which keeps the updates monotone."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def beta_ratio(w: Array, h: Array, tile: Tile, beta: float) -> Tile:
    """``V ⊙ (WH)^(β−2)`` where ``V ≠ 0`` (``WH`` floored at EPSILON for β < 2)."""
    v, wh = wh_at_nonzeros(w, h, tile)
    if beta < 2:
        array_module(wh).maximum(wh, EPSILON, out=wh)
    wh = wh ** (beta - 2)
    if not is_sparse(v):
        return wh * v
    return _with_values(v, v.data * wh)


def _wh_power(w: Array, h: Array, beta: float) -> Array:
    wh = w @ h
    if beta < 1:
        array_module(wh).maximum(wh, EPSILON, out=wh)
    return wh ** (beta - 1)


def beta_denominator_rows(w: Array, h: Array, beta: float) -> Array:
    """``(W_i H_j)^(β−1) H_jᵀ`` (``r × k``), by batches of rows."""
    xp = array_module(w, h)
    out = xp.empty(w.shape, dtype=xp.result_type(w, h))
    for rows in _row_batches(w.shape[0], h.shape[1]):
        out[rows] = _wh_power(w[rows], h, beta) @ h.T
    return out


def beta_denominator_cols(w: Array, h: Array, beta: float) -> Array:
    """``W_iᵀ (W_i H_j)^(β−1)`` (``k × c``), by batches of rows."""
    xp = array_module(w, h)
    out = xp.zeros((w.shape[1], h.shape[1]), dtype=xp.result_type(w, h))
    for rows in _row_batches(w.shape[0], h.shape[1]):
        out += w[rows].T @ _wh_power(w[rows], h, beta)
    return out


def beta_update_rows(
    beta: float, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], _g=None
) -> Array:
    """β-divergence MU of a row block of ``W`` (scikit-learn's rule, ``γ`` exponent and
    the zeroing below float64 epsilon for β < 1 included)."""
    numerator = sum(
        tile_times_ht(beta_ratio(w, h, tile, beta), h) for tile, h in zip(tiles, hs, strict=True)
    )
    denominator = sum(beta_denominator_rows(w, h, beta) for h in hs)
    return beta_step(w, numerator, denominator, beta, penalty, zero_small=beta < 1)


def beta_h_terms(
    beta: float, w: Array, tiles: list[Tile], hs: list[Array], _g=None
) -> tuple[Array, list[Array], Array]:
    """A row block's H-side terms: per tile ``[W_iᵀ (V ⊙ WH^(β−2)); W_iᵀ WH^(β−1)]``
    stacked (``2k × c``), and a placeholder ``1 × 1`` small matrix."""
    xp = array_module(w)
    parts = [
        xp.vstack(
            [wt_times_tile(w, beta_ratio(w, h, tile, beta)), beta_denominator_cols(w, h, beta)]
        )
        for tile, h in zip(tiles, hs, strict=True)
    ]
    return w, parts, xp.zeros((1, 1), dtype=w.dtype)


def beta_row_pass(
    beta: float, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], _g=None
) -> tuple[Array, list[Array], Array]:
    """The β W update of a row block and, from the new ``W_i``, its H-side terms."""
    return beta_h_terms(beta, beta_update_rows(beta, penalty, w, tiles, hs), tiles, hs)


def beta_update_cols(beta: float, penalty: Penalty, h: Array, stacked: Array, _g=None) -> Array:
    """β-divergence MU of a column block of ``H`` from the stacked sums of
    :func:`beta_h_terms`."""
    k = h.shape[0]
    return beta_step(h, stacked[:k], stacked[k:], beta, penalty, zero_small=beta <= 1)


def beta_step(
    x: Array,
    numerator: Array,
    denominator: Array,
    beta: float,
    penalty: Penalty,
    zero_small: bool,
) -> Array:
    """``x ∘ (numerator / (denominator + l1 + l2 x))^γ``, zero denominators as
    EPSILON, and (``zero_small``) entries below float64 epsilon set to zero: scikit-learn
    does so after W updates for β < 1 and after H updates for β ≤ 1."""
    denominator = denominator + penalty.l1 + penalty.l2 * x
    denominator[denominator == 0] = EPSILON
    delta = numerator / denominator
    gamma = beta_gamma(beta)
    if gamma != 1:
        delta **= gamma
    out = x * delta
    if zero_small:
        out[out < np.finfo(np.float64).eps] = 0.0
    return out


def beta_divergence_terms(w: Array, h: Array, tile: Tile, beta: float) -> np.ndarray:
    """One tile's sums for the β-divergence, as a ``1 × 3`` float64 row.

    β = 0 (Itakura–Saito): ``[Σ V/WH, Σ log(V/WH), count]`` over entries ``V > EPSILON``;
    otherwise ``[Σ V^β, Σ V · WH^(β−1), Σ_all WH^β]``, ``WH`` floored at EPSILON where
    ``V > EPSILON`` (scikit-learn's conventions).
    """
    v, wh = wh_at_nonzeros(w, h, tile)
    xp = array_module(wh)
    values = xp.asarray(v.data if is_sparse(v) else v, dtype=np.float64).ravel()
    wh_nz = xp.asarray(wh, dtype=np.float64).ravel()
    keep = values > EPSILON
    values, wh_nz = values[keep], xp.maximum(wh_nz[keep], EPSILON)
    if beta == 0:
        div = values / wh_nz
        return np.asarray([[float(div.sum()), float(xp.log(div).sum()), float(keep.sum())]])
    total_wh_beta = 0.0
    for rows in _row_batches(w.shape[0], h.shape[1]):
        total_wh_beta += float(((w[rows] @ h).astype(np.float64) ** beta).sum())
    return np.asarray(
        [[float((values**beta).sum()), float((values * wh_nz ** (beta - 1)).sum()), total_wh_beta]]
    )
