"""Per-tile math for NMF on observed entries only (missing-entry NMF, ratings).

The loss is the β-divergence summed over the observed entries ``Ω`` of ``V``:
the stored entries of a sparse tile (explicit zeros included: a rating of 0 is data)
or the non-NaN entries of a dense one. Its multiplicative updates are the unmasked
ones with every full-matrix term restricted to ``Ω``::

    W ← W ∘ [ ((M ∘ V ∘ WH^(β−2)) Hᵀ) / ((M ∘ WH^(β−1)) Hᵀ) ]^γ

(``M`` the 0/1 mask; the H update is the transpose). Both matrices are sampled
products, non-zero only on ``Ω``, so a sparse tile costs O(nnz · k) and ``W @ H`` is
never formed. For β = 2 this is weighted NMF (Mao & Saul; Zhang et al. 2006), whose
updates are monotone like Lee & Seung's.

Tiles, blocks and orientation are those of :mod:`dasknmf.kernels.tiles`.
"""

from __future__ import annotations

import numpy as np

from dasknmf.devices import array_module
from dasknmf.kernels.penalty import Penalty
from dasknmf.kernels.sampled import wh_at_nonzeros, with_values
from dasknmf.kernels.steps import beta_step
from dasknmf.kernels.tiles import EPSILON, Array, Tile, is_sparse, tile_times_ht, wt_times_tile


def _observed(w: Array, h: Array, tile: Tile) -> tuple[Tile, Array, Array]:
    """``(where, v, wh)``: the observed values and ``W_i H_j`` at them, as flat arrays
    in the tile's storage order, and where they sit: the tile as CSR, or the boolean
    mask of a dense tile's non-NaN entries (row-major)."""
    if is_sparse(tile):
        tile, wh = wh_at_nonzeros(w, h, tile)
        return tile, tile.data, wh
    seen = ~array_module(tile).isnan(tile)
    return seen, tile[seen], (w @ h)[seen]


def _like_tile(where: Tile, values: Array) -> Tile:
    """A tile holding ``values`` at the observed positions ``where`` (a CSR tile, or
    a dense tile's mask), zero elsewhere."""
    if is_sparse(where):
        return with_values(where, values)
    out = array_module(values).zeros(where.shape, dtype=values.dtype)
    out[where] = values
    return out


def observed_terms(w: Array, h: Array, tile: Tile, beta: float) -> tuple[Tile, Tile]:
    """``(M ∘ V ∘ WH^(β−2), M ∘ WH^(β−1))`` for one tile, each shaped like the tile.

    ``WH`` is floored at EPSILON for β < 2 (the powers are then negative or the
    logarithm's limit), as scikit-learn does.
    """
    where, v, wh = _observed(w, h, tile)
    if beta == 2:
        return _like_tile(where, v.astype(wh.dtype, copy=False)), _like_tile(where, wh)
    xp = array_module(wh)
    xp.maximum(wh, EPSILON, out=wh)
    if beta == 1:
        return _like_tile(where, v / wh), _like_tile(where, xp.ones_like(wh))
    power = wh ** (beta - 2)
    return _like_tile(where, v * power), _like_tile(where, power * wh)


def update_rows(
    beta: float, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], _g=None
) -> Array:
    """Masked β-MU of a row block of ``W`` from all its tiles."""
    xp = array_module(w)
    numerator = xp.zeros(w.shape, dtype=w.dtype)
    denominator = xp.zeros(w.shape, dtype=w.dtype)
    for tile, h in zip(tiles, hs, strict=True):
        num, den = observed_terms(w, h, tile, beta)
        numerator += tile_times_ht(num, h)
        denominator += tile_times_ht(den, h)
    return beta_step(w, numerator, denominator, beta, penalty, zero_small=beta < 1)


def h_terms(
    beta: float, w: Array, tiles: list[Tile], hs: list[Array], _g=None
) -> tuple[Array, list[Array], Array]:
    """A row block's H-side terms: per tile ``[W_iᵀ (M∘V∘WH^(β−2)); W_iᵀ (M∘WH^(β−1))]``
    stacked (``2k × c``, the layout :func:`dasknmf.kernels.beta.beta_update_cols` takes),
    and a placeholder ``1 × 1`` small matrix."""
    xp = array_module(w)
    parts = []
    for tile, h in zip(tiles, hs, strict=True):
        num, den = observed_terms(w, h, tile, beta)
        parts.append(xp.vstack([wt_times_tile(w, num), wt_times_tile(w, den)]))
    return w, parts, xp.zeros((1, 1), dtype=w.dtype)


def row_pass(
    beta: float, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], _g=None
) -> tuple[Array, list[Array], Array]:
    """The masked W update of a row block and, from the new ``W_i``, its H-side terms."""
    return h_terms(beta, update_rows(beta, penalty, w, tiles, hs), tiles, hs)


def divergence_terms(w: Array, h: Array, tile: Tile, beta: float) -> np.ndarray:
    """``[[Σ_Ω d_β(V | WH), |Ω|, Σ_Ω (V − WH)²]]`` for one tile, in float64.

    ``d_β`` is the elementwise β-divergence (½(v − x)² for β = 2); ``WH`` is floored
    at EPSILON where a logarithm or a negative power needs it. An observed zero adds
    ``x`` for KL and is undefined for β ≤ 0 (the estimator refuses such data).
    """
    _, v, wh = _observed(w, h, tile)
    xp = array_module(wh)
    v = xp.asarray(v, dtype=np.float64)
    x = xp.asarray(wh, dtype=np.float64)
    squares = float(xp.square(v - x).sum())
    if beta == 2:
        div = 0.5 * squares
    else:
        x = xp.maximum(x, EPSILON)
        if beta == 1:
            pos = v > 0
            div = float((v[pos] * xp.log(v[pos] / x[pos])).sum() - v.sum() + x.sum())
        elif beta == 0:
            ratio = v / x
            div = float((ratio - xp.log(ratio) - 1).sum())
        else:
            div = float(
                (v**beta + (beta - 1) * x**beta - beta * v * x ** (beta - 1)).sum()
                / (beta * (beta - 1))
            )
    return np.asarray([[div, float(v.size), squares]])


def clipped_squares(w: Array, h: Array, tile: Tile, low: float, high: float) -> np.ndarray:
    """``[[|Ω|, Σ_Ω (V − clip(WH, low, high))²]]`` for one tile, in float64: the
    squared error of predictions clipped to a rating scale."""
    _, v, wh = _observed(w, h, tile)
    xp = array_module(wh)
    x = xp.clip(xp.asarray(wh, dtype=np.float64), low, high)
    squares = float(xp.square(xp.asarray(v, dtype=np.float64) - x).sum())
    return np.asarray([[float(v.size), squares]])


def predict_pairs(w_rows: Array, h_cols: Array) -> Array:
    """``Σ_a W[r, a] H[a, c]`` for aligned rows ``w_rows`` (``p × k``) and columns
    ``h_cols`` (``k × p``): one prediction per pair."""
    return array_module(w_rows).einsum("pa,ap->p", w_rows, h_cols)


__all__ = [
    "clipped_squares",
    "divergence_terms",
    "h_terms",
    "observed_terms",
    "predict_pairs",
    "row_pass",
    "update_rows",
]
