"""Alternating non-negative least squares over observed entries: the ratings solver.

For ``missing='ignore'`` with the squared error, each sweep solves every row of ``W``
exactly with ``H`` fixed, then every column of ``H`` with ``W`` fixed, each over its
own observed entries (:mod:`dasknmf.kernels.als`): the alternating least squares of
recommender systems (ALS-WR; Spark's ALS with ``nonnegative=True``), with the same
tiles, graphs and out-of-core pass as the other solvers:

- ``W``: one task per row block reads its row of tiles, accumulates each row's
  ``k × k`` Gram and solves the rows;
- ``H``: the same task emits, per tile, every column's Gram, right-hand side and
  count from the new ``W_i`` (``(k² + k + 1) × c``); the partials are tree-summed over
  row blocks and one task per column block solves its columns.

Out of core that is one read of ``V`` per sweep; in memory the ``W`` update and the
``H`` partials are two passes, as for the multiplicative updates. A sweep costs
O(nnz · k²) and usually lands within a percent of the final held-out error in ten or
twenty sweeps, where the masked multiplicative updates need hundreds
(``docs/benchmarks.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import dask.array as da
import numpy as np

from dasknmf import products
from dasknmf.kernels import als
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.solvers.base import Problem, Step
from dasknmf.solvers.masked import observed_sums

__all__ = ["MaskedALS"]


@dataclass(frozen=True)
class MaskedALS:
    """Alternating non-negative least squares on the observed entries of ``V``.

    Parameters
    ----------
    V : dask.array.Array or matrix
        The tiled input: stored entries of sparse tiles (explicit zeros included) and
        non-NaN entries of dense tiles are observed.
    in_memory : bool
        ``V`` persisted: two passes per sweep; else one.
    penalty_w, penalty_h : Penalty
        Elastic net (``l1``, ``l2``) and weighted λ (``l2_weighted``, times each
        row's or column's number of observed entries), solved for exactly.
    """

    V: da.Array
    in_memory: bool = True
    penalty_w: Penalty = NO_PENALTY
    penalty_h: Penalty = NO_PENALTY
    reusable: bool = True
    transform_start: ClassVar[str] = "zero"
    #: Honours ``Penalty.l2_weighted`` (the estimator's ``alpha_weighted``).
    weighted_lambda: ClassVar[bool] = True

    @classmethod
    def build(cls, problem: Problem) -> MaskedALS:
        return cls(problem.V, **problem.options)

    def step(self, W: da.Array, H: da.Array) -> Step:
        k = W.shape[1]
        rows = k * k + k + 1  # per column: Gram, right-hand side, count
        if self.in_memory:
            W = products.map_row_blocks(
                partial(als.update_rows, self.penalty_w), self.V, W, H, _unit(W)
            )
            _, parts, _ = products.row_block_pass(
                als.h_terms, self.V, W, H, small_shape=(1, 1), partial_rows=rows
            )
        else:
            W, parts, _ = products.row_block_pass(
                partial(als.row_pass, self.penalty_w),
                self.V,
                W,
                H,
                small_shape=(1, 1),
                partial_rows=rows,
            )
        H = _update_h(H, products.sum_blocks(parts), self.penalty_h)
        return Step(W, H, lambda: self.error(W, H))

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        """``‖M ∘ (V − WH)‖_F`` (the penalties excluded, as for the other solvers)."""
        sums = observed_sums(self.V, W, H, 2.0)
        return da.sqrt(da.maximum(sums[2], 0.0))

    def transform_w(
        self, H: da.Array, W0: da.Array, *, max_iter: int, tol: float, check_every: int
    ) -> da.Array:
        """The exact least-squares ``W`` for ``H``: one solve per row, so ``max_iter``,
        ``tol`` and ``check_every`` have nothing to do (a row's solution does not
        depend on ``W0``, only its cost does)."""
        if max_iter == 0:
            return W0
        update = partial(als.update_rows, self.penalty_w)
        return products.map_row_blocks(update, self.V, W0, H, _unit(W0))


def _update_h(H, stacked, penalty: Penalty):
    """The column solves of ``H``, one task per column block."""
    return products.map_column_blocks(partial(als.update_cols, penalty), H, stacked)


def _unit(W):
    """A 1 × 1 placeholder for the "small" slot the ALS kernels do not use."""
    one = np.ones((1, 1), dtype=W.dtype)
    return da.from_array(one) if products.is_lazy(W) else one
