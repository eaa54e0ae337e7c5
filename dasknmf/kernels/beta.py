"""Multiplicative updates for the general β-divergence (Itakura–Saito is β = 0).

For β outside {1, 2} the denominators need ``(WH)^(β−1)`` at every entry, not only at
``V``'s non-zeros: each tile computes ``W_i H_j`` densely, a batch of rows at a time
(:data:`DENSE_BATCH` entries), never the whole ``W @ H``.
"""

from __future__ import annotations

import numpy as np

from dasknmf.devices import array_module
from dasknmf.kernels.penalty import Penalty
from dasknmf.kernels.sampled import wh_at_nonzeros, with_values
from dasknmf.kernels.steps import beta_step
from dasknmf.kernels.tiles import EPSILON, Array, Tile, is_sparse, tile_times_ht, wt_times_tile

#: Entries of a dense ``W_i H_j`` batch computed at once.
DENSE_BATCH = 1 << 21


def _row_batches(n_rows: int, n_cols: int):
    step = max(1, DENSE_BATCH // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def beta_ratio(w: Array, h: Array, tile: Tile, beta: float) -> Tile:
    """``V ⊙ (WH)^(β−2)`` where ``V ≠ 0`` (``WH`` floored at EPSILON for β < 2)."""
    v, wh = wh_at_nonzeros(w, h, tile)
    if beta < 2:
        array_module(wh).maximum(wh, EPSILON, out=wh)
    wh = wh ** (beta - 2)
    if not is_sparse(v):
        return wh * v
    return with_values(v, v.data * wh)


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
