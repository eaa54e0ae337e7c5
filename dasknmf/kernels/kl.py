"""Multiplicative updates for the generalised Kullback–Leibler divergence.

``D(V ‖ WH) = Σ V log(V / WH) − Σ V + Σ WH`` needs ``WH`` only where ``V ≠ 0`` (a
sampled product, :mod:`dasknmf.kernels.sampled`) plus ``Σ WH = (1ᵀW)(H1)``.
scikit-learn's conventions: ``WH`` below EPSILON counts as EPSILON, and entries of
``V`` ≤ EPSILON add nothing to the log term.
"""

from __future__ import annotations

import numpy as np

from dasknmf.devices import array_module
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.kernels.sampled import wh_at_nonzeros, with_values
from dasknmf.kernels.steps import mu_step
from dasknmf.kernels.tiles import EPSILON, Array, Tile, is_sparse, tile_times_ht, wt_times_tile


def kl_ratio(w: Array, h: Array, tile: Tile) -> Tile:
    """``V_ij / W_i H_j`` where ``V_ij ≠ 0`` (zero elsewhere), as a tile like ``V_ij``."""
    v, wh = wh_at_nonzeros(w, h, tile)
    xp = array_module(wh)
    xp.maximum(wh, EPSILON, out=wh)
    if not is_sparse(v):
        return xp.divide(v, wh, out=wh)
    return with_values(v, v.data / wh)


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
