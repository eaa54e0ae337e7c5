"""Multiplicative updates for β-divergences other than 1 and 2 (Itakura–Saito is 0).

scikit-learn's rule (Févotte & Idier 2011)::

    W ← W ∘ [ ((V ⊙ (WH)^(β−2)) Hᵀ) / ((WH)^(β−1) Hᵀ) ]^γ
    H ← H ∘ [ (Wᵀ (V ⊙ (WH)^(β−2))) / (Wᵀ (WH)^(β−1)) ]^γ

with ``γ = 1/(2−β)`` for β < 1, ``1/(β−1)`` for β > 2, else 1. The numerators need
``WH`` only at ``V``'s non-zeros; the denominators need it everywhere, so each tile
computes ``W_i H_j`` densely a batch of rows at a time (never the whole ``W @ H``).
The cost is therefore O(m·n·k) per iteration whatever the sparsity of ``V``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import ClassVar

import dask.array as da
import numpy as np

from dasknmf import products
from dasknmf.kernels.beta import (
    beta_divergence_terms,
    beta_h_terms,
    beta_row_pass,
    beta_update_cols,
    beta_update_rows,
)
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.solvers.base import Problem, Step
from dasknmf.stopping import ToleranceRule


def _tile_terms(beta, w, tile, h):
    return beta_divergence_terms(w, h, tile, beta)


@dataclass(frozen=True)
class BetaMU:
    """β-divergence multiplicative updates on one matrix ``V`` (β ∉ {1, 2}).

    Parameters
    ----------
    V : dask.array.Array
        The tiled input.
    beta : float
        The divergence's β.
    in_memory : bool
        ``V`` persisted: two passes per iteration; else one.
    penalty_w, penalty_h : Penalty
        Elastic-net penalties, added to the denominators as scikit-learn does.
    """

    V: da.Array
    beta: float
    in_memory: bool = True
    penalty_w: Penalty = NO_PENALTY
    penalty_h: Penalty = NO_PENALTY
    reusable: bool = True
    transform_start: ClassVar[str] = "mean"

    @classmethod
    def build(cls, problem: Problem) -> BetaMU:
        return cls(problem.V, problem.beta, **problem.options)

    #: The per-row-block kernels; the masked variant swaps in its own (same signatures).
    tile_kernels: ClassVar = SimpleNamespace(
        update_rows=beta_update_rows,
        h_terms=beta_h_terms,
        row_pass=beta_row_pass,
    )

    def step(self, W: da.Array, H: da.Array) -> Step:
        k, beta, fns = W.shape[1], self.beta, self.tile_kernels
        if self.in_memory:
            W = products.map_row_blocks(
                partial(fns.update_rows, beta, self.penalty_w), self.V, W, H, _unit(W)
            )
            _, parts, _ = products.row_block_pass(
                partial(fns.h_terms, beta),
                self.V,
                W,
                H,
                small_shape=(1, 1),
                partial_rows=2 * k,
            )
        else:
            W, parts, _ = products.row_block_pass(
                partial(fns.row_pass, beta, self.penalty_w),
                self.V,
                W,
                H,
                small_shape=(1, 1),
                partial_rows=2 * k,
            )
        H = update_h(H, products.sum_blocks(parts), beta, self.penalty_h)
        return Step(W, H, lambda: self.error(W, H))

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        """``sqrt(2 D_β(V ‖ WH))``, scikit-learn's ``reconstruction_err_``."""
        sums = products.tile_sums(partial(_tile_terms, self.beta), W, self.V, H, 3)
        return _error_from_sums(sums, self.beta, float(np.prod(self.V.shape)))

    def transform_w(
        self, H: da.Array, W0: da.Array, *, max_iter: int, tol: float, check_every: int
    ) -> da.Array:
        options = dict(max_iter=max_iter, tol=tol, check_every=check_every)
        return transform_w(self.V, H, W0, beta=self.beta, penalty=self.penalty_w, **options)


def update_h(H, stacked, beta: float, penalty: Penalty):
    """H update per column block from the stacked ``2k × n`` numerator/denominator."""
    return products.map_column_blocks(partial(beta_update_cols, beta, penalty), H, stacked)


def _error_from_sums(sums, beta: float, size: float):
    if beta == 0:
        res = sums[0] - size - sums[1]
    else:
        res = (sums[0] - beta * sums[1] + (beta - 1) * sums[2]) / (beta * (beta - 1))
    return da.sqrt(2 * da.maximum(res, 0.0))


def _unit(W):
    """A 1 × 1 placeholder for the "small" slot the β kernels do not use."""
    one = np.ones((1, 1), dtype=W.dtype)
    return da.from_array(one) if products.is_lazy(W) else one


def transform_w(
    V,
    H,
    W0,
    *,
    beta: float,
    max_iter: int,
    tol: float,
    check_every: int,
    penalty: Penalty = NO_PENALTY,
):
    """``W`` minimising ``D_β(V ‖ WH)`` for fixed ``H``, row block by row block."""

    def error(w, tiles, hs):
        size = float(sum(np.prod(t.shape) for t in tiles))
        sums = sum(beta_divergence_terms(w, h, t, beta)[0] for t, h in zip(tiles, hs, strict=True))
        return float(_error_from_sums(sums, beta, size))

    update = partial(beta_update_rows, beta, penalty)
    options = dict(max_iter=max_iter, tol=tol, check_every=check_every)
    return solve_w_rows(V, H, W0, update, error, **options)


def solve_w_rows(V, H, W0, update, error, *, max_iter: int, tol: float, check_every: int):
    """Iterate ``w ← update(w, tiles, hs)`` on every row block of ``W`` with ``H``
    fixed (``transform``), each block stopped by the ``tol`` rule on its own
    ``error(w, tiles, hs)``."""
    solve = partial(
        _solve_w_block,
        update=update,
        error=error,
        max_iter=max_iter,
        stopping_rule=partial(ToleranceRule, tol, check_every),
    )
    if not products.is_lazy(V, H, W0):
        return solve(W0, [V], [H], None)
    return products.map_row_blocks(solve, V, W0, H, _unit(W0))


def _solve_w_block(w, tiles, hs, _g, *, update, error, max_iter, stopping_rule):
    rule = stopping_rule(error(w, tiles, hs))
    for it in range(1, max_iter + 1):
        w = update(w, tiles, hs)
        if rule.is_check(it) and rule.converged(error(w, tiles, hs)):
            break
    return w
