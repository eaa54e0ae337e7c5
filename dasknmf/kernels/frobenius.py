"""Update rules for the Frobenius loss ``½‖V − WH‖²`` and the row-block passes that
feed them.

A rule updates a tall factor block ``x`` (rows × k) from ``xht``, its rows of the
data-times-other-factor product, and ``g``, the other factor's k × k Gram matrix:
for W these are ``V_i Hᵀ`` and ``H Hᵀ``; for H (handled transposed, ``H_jᵀ``) they
are ``(Wᵀ V)_jᵀ`` and ``Wᵀ W``. The same rule therefore serves both factors.
"""

from __future__ import annotations

import numpy as np

from dasknmf.devices import array_module, block_to_host
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.kernels.steps import mu_step
from dasknmf.kernels.tiles import Array, Tile, gram_rows, inner, tile_times_ht, wt_times_tile


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
    return rule(w, row_times_ht(tiles, hs), hht, penalty)


def row_times_ht(tiles: list[Tile], hs: list[Array]) -> Array:
    """``V_i Hᵀ = Σ_j V_ij H_jᵀ`` of one row block of tiles."""
    product = tile_times_ht(tiles[0], hs[0])
    for tile, h in zip(tiles[1:], hs[1:], strict=True):
        product += tile_times_ht(tile, h)
    return product


def row_pass(
    rule,
    penalty: Penalty,
    w: Array,
    tiles: list[Tile],
    hs: list[Array],
    hht: Array,
    gram=gram_rows,
) -> tuple[Array, list[Array], Array]:
    """One row block's whole share of an iteration, reading its tiles once.

    Updates ``W_i`` (:func:`update_rows`), then, with the new ``W_i``, returns the row
    block's contributions to the H update: ``W_iᵀ V_ij`` for each tile and
    ``W_iᵀ W_i``. Summed over row blocks these are exactly the ``WᵀV`` and ``WᵀW`` of
    the two-pass order, so the result is the same update sequence.
    """
    return h_update_terms(update_rows(rule, penalty, w, tiles, hs, hht), tiles, gram=gram)


def scored_row_pass(
    rule, penalty: Penalty, w: Array, tiles: list[Tile], hs: list[Array], hht: Array
) -> tuple[Array, list[Array], Array, np.ndarray]:
    """:func:`row_pass`, and the row block's share of the input factors' error.

    The share is ``Σ (W_iᵀ W_i) ∘ (H Hᵀ) − 2 Σ W_i ∘ (V_i Hᵀ)`` in float64 (a
    ``1 × 1`` array); summed over row blocks and added to ``‖V‖²`` it is
    ``‖V − WH‖²`` at the ``W``, ``H`` this pass starts from. ``V_i Hᵀ`` is the
    product the W update makes anyway, so the first iteration of a fit gives the
    initial factors' error without a read of ``V`` of its own.
    """
    vht = row_times_ht(tiles, hs)
    share = float(inner(gram_rows(w), hht)) - 2.0 * float(inner(w, vht))
    w_new, partials, gram = h_update_terms(rule(w, vht, hht, penalty), tiles)
    return w_new, partials, gram, np.full((1, 1), share)


def h_update_terms(
    w: Array, tiles: list[Tile], hs: object = None, g: object = None, gram=gram_rows
) -> tuple[Array, list[Array], Array]:
    """A row block's contributions to the H update: ``W_iᵀ V_ij`` per tile and
    ``gram(W_i)`` (``W_iᵀ W_i``; a stacked fit packs it per replicate). ``W_i`` is
    returned unchanged; ``hs`` and ``g`` are not used."""
    return w, [wt_times_tile(w, tile) for tile in tiles], gram(w)


def update_cols(rule, penalty: Penalty, h: Array, wtv: Array, wtw: Array) -> Array:
    """H-update of one column block: ``rule`` on ``H_jᵀ`` with ``(WᵀV)_jᵀ`` and ``WᵀW``.

    Returns a Fortran-ordered ``k × c`` array (a C-ordered ``c × k`` one, transposed),
    the layout of :func:`~dasknmf.kernels.tiles.wt_times_tile`'s output: elementwise
    work on matching layouts is faster (docs/benchmarks.md), and ``H_jᵀ`` is then
    C-contiguous, as SciPy's sparse × dense product wants it (it copies anything else).
    """
    return rule(h.T, wtv.T, wtw, penalty).T
