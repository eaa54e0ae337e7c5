"""Multiplicative updates for the generalised Kullback–Leibler divergence.

``D(V ‖ WH) = Σ V log(V / WH) − Σ V + Σ WH`` (scikit-learn's ``beta_loss=1``)::

    W ← W ∘ ((V ⊘ WH) Hᵀ) / (1 (H 1)ᵀ)
    H ← H ∘ (Wᵀ (V ⊘ WH)) / ((1ᵀ W)ᵀ 1)

``V ⊘ WH`` is needed only where ``V ≠ 0``: each tile computes ``WH`` at its non-zeros
(a sampled product), so ``W @ H`` is never formed, and ``Σ WH = (1ᵀW)(H1)``. Every
update reads a whole row of tiles in one task (the ratio depends on the new ``W_i``,
so the H side is computed in the same pass as the W update out of core).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import dask.array as da
import numpy as np

from dasknmf import products
from dasknmf.kernels.kl import (
    kl_divergence_terms,
    kl_h_terms,
    kl_row_pass,
    kl_solve_w_block,
    kl_update_cols,
    kl_update_rows,
)
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.solvers.base import Problem, Step
from dasknmf.stopping import ToleranceRule


def _row_sums(H):
    """``H 1`` as a one-chunk ``1 × k`` matrix."""
    sums = H.sum(axis=1)[None, :]
    return sums.rechunk(sums.shape) if products.is_lazy(sums) else sums


def _tile_terms(w, tile, h):
    return kl_divergence_terms(w, h, tile)


@dataclass(frozen=True)
class KullbackLeiblerMU:
    """KL multiplicative updates on one matrix ``V``.

    Parameters
    ----------
    V : dask.array.Array
        The tiled input.
    total : float
        ``Σ V`` (from the input statistics).
    in_memory : bool
        ``V`` persisted: the W update and the H-side terms are two passes; else one.
    penalty_w, penalty_h : Penalty
        Elastic-net penalties, added to the denominators as scikit-learn does.
    """

    V: da.Array
    total: float
    in_memory: bool = True
    penalty_w: Penalty = NO_PENALTY
    penalty_h: Penalty = NO_PENALTY
    reusable: bool = True
    transform_start: ClassVar[str] = "mean"

    @classmethod
    def build(cls, problem: Problem) -> KullbackLeiblerMU:
        return cls(problem.V, problem.total, **problem.options)

    def step(self, W: da.Array, H: da.Array) -> Step:
        k = W.shape[1]
        h_sum = _row_sums(H)
        if self.in_memory:
            fn = partial(kl_update_rows, self.penalty_w)
            W = products.map_row_blocks(fn, self.V, W, H, h_sum)
            _, parts, w_sums = products.row_block_pass(
                kl_h_terms, self.V, W, H, small_shape=(1, k)
            )
        else:
            fn = partial(kl_row_pass, self.penalty_w)
            W, parts, w_sums = products.row_block_pass(fn, self.V, W, H, h_sum, small_shape=(1, k))
        update = partial(kl_update_cols, self.penalty_h)
        H = products.map_factor_blocks(
            update, H, products.sum_blocks(parts), products.sum_blocks(w_sums)
        )
        return Step(W, H, lambda: self.error(W, H))

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        """``sqrt(2 D(V ‖ WH))``, scikit-learn's ``reconstruction_err_`` for KL."""
        log_terms = products.tile_sums(_tile_terms, W, self.V, H, 1)[0]
        sum_wh = (W.sum(axis=0).astype(np.float64) * H.sum(axis=1)).sum()
        return da.sqrt(2 * da.maximum(log_terms - self.total + sum_wh, 0.0))

    def transform_w(
        self, H: da.Array, W0: da.Array, *, max_iter: int, tol: float, check_every: int
    ) -> da.Array:
        options = dict(max_iter=max_iter, tol=tol, check_every=check_every)
        return transform_w(self.V, H, W0, penalty=self.penalty_w, **options)


def transform_w(
    V, H, W0, *, max_iter: int, tol: float, check_every: int, penalty: Penalty = NO_PENALTY
):
    """``W`` minimising ``D(V ‖ WH)`` for fixed ``H``, row block by row block."""
    solve = partial(
        kl_solve_w_block,
        max_iter=max_iter,
        penalty=penalty,
        stopping_rule=partial(ToleranceRule, tol, check_every),
    )
    h_sum = _row_sums(H)
    if not products.is_lazy(V, H, W0):
        return solve(W0, [V], [H], h_sum)
    return products.map_row_blocks(lambda w, tiles, hs, g: solve(w, tiles, hs, g), V, W0, H, h_sum)
