"""The alternating scheme shared by the Frobenius-loss solvers (``½‖V − WH‖²``).

Every iteration updates ``W`` from ``V Hᵀ`` and ``H Hᵀ``, then ``H`` from ``Wᵀ V`` and
``Wᵀ W``, in scikit-learn's order. What differs between solvers is only the per-block
*rule* applied to those products (:mod:`dasknmf.kernels.frobenius`: ``mu_rule``,
``hals_rule``); this module decides how ``V`` is traversed to get them:

- out of core, when a row block's tiles fit in one task (up to
  ``products.SPLIT_EVERY`` column tiles), both products come from a single pass over
  ``V`` (:func:`one_pass`); see :class:`AlternatingFrobenius` for the other cases;
- the error is never computed from ``W @ H``: with ``WᵀV`` and ``WᵀW`` already built
  for the H update, ``‖V − WH‖² = ‖V‖² − 2 Σ H∘(WᵀV) + Σ (WᵀW)∘(HHᵀ)`` costs only a
  ``k × k`` Gram matrix more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import dask
import dask.array as da
import numpy as np

from dasknmf import products
from dasknmf.devices import array_module
from dasknmf.kernels.frobenius import (
    mu_rule,
    row_pass,
    scored_row_pass,
    update_cols,
    update_rows,
)
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.kernels.stack import Stack, StackedRule
from dasknmf.kernels.tiles import inner, is_sparse
from dasknmf.solvers.base import Problem, Step
from dasknmf.stopping import ToleranceRule

#: ``rule(x, xht, g, penalty) -> x_new`` on a tall factor block
#: (:mod:`dasknmf.kernels.frobenius`).
Rule = Callable[..., np.ndarray]


def update_w(
    V: da.Array,
    W: da.Array,
    H: da.Array,
    rule: Rule,
    penalty: Penalty = NO_PENALTY,
    stack: Stack | None = None,
) -> da.Array:
    """One update of ``W`` with ``H`` fixed (replicate by replicate for a ``stack``)."""
    hht = products.gram_cols(H, stack)
    rule = _stacked(rule, stack)
    if products.few_column_tiles(V):
        return products.map_row_blocks(partial(update_rows, rule, penalty), V, W, H, hht)
    rule_with_penalty = partial(_apply, rule, penalty)
    return products.map_factor_blocks(rule_with_penalty, W, products.v_times_ht(V, H), hht)


def _apply(rule: Rule, penalty: Penalty, x, xht, g):
    return rule(x, xht, g, penalty)


def _stacked(rule: Rule, stack: Stack | None) -> Rule:
    return rule if stack is None else StackedRule(rule, stack)


def update_h(
    V: da.Array,
    W: da.Array,
    H: da.Array,
    rule: Rule,
    penalty: Penalty = NO_PENALTY,
    stack: Stack | None = None,
) -> tuple[da.Array, da.Array, da.Array]:
    """One update of ``H`` with ``W`` fixed.

    Returns the new ``H`` and the ``WᵀV`` and ``WᵀW`` it was built from (packed per
    replicate for a ``stack``), which the error computation reuses.
    """
    wtv, wtw = products.h_update_sums(V, W, stack)
    return update_h_from(H, wtv, wtw, _stacked(rule, stack), penalty), wtv, wtw


def update_h_from(
    H: da.Array, wtv: da.Array, wtw: da.Array, rule: Rule, penalty: Penalty
) -> da.Array:
    """The H update from already reduced ``WᵀV`` and ``WᵀW``."""
    return products.map_factor_blocks(partial(update_cols, rule, penalty), H, wtv, wtw)


def one_pass(
    V: da.Array,
    W: da.Array,
    H: da.Array,
    rule: Rule,
    penalty: Penalty = NO_PENALTY,
    stack: Stack | None = None,
    *,
    scored: bool = False,
) -> tuple[da.Array, ...]:
    """The W update and the sums the H update needs, in one pass over ``V``.

    Returns the new ``W`` with ``WᵀV`` and ``WᵀW`` computed from it, exactly as
    :func:`update_w` followed by the products of :func:`update_h`, but reading each
    row of tiles once. Needs :func:`products.few_column_tiles`. With ``scored`` (no
    ``stack``), also ``‖V − WH‖² − ‖V‖²`` at the ``W``, ``H`` given, from the same
    pass (:func:`~dasknmf.kernels.frobenius.scored_row_pass`).
    """
    hht = products.gram_cols(H, stack)
    if scored:
        fn = partial(scored_row_pass, rule, penalty)
        W, partials, grams, score = products.row_block_pass(fn, V, W, H, hht, scored=True)
        return W, products.sum_blocks(partials), products.sum_blocks(grams), score
    if stack is None:
        fn, small = partial(row_pass, rule, penalty), None
    else:
        fn = partial(row_pass, StackedRule(rule, stack), penalty, gram=stack.gram_rows)
        small = stack.packed_shape
    W, partials, grams = products.row_block_pass(fn, V, W, H, hht, small_shape=small)
    return W, products.sum_blocks(partials), products.sum_blocks(grams)


def squared_error(norm_v2: float, H: da.Array, wtv: da.Array, wtw: da.Array) -> da.Array:
    """``‖V − WH‖²`` from ``‖V‖²``, ``WᵀV`` and ``WᵀW`` (0-d float64, clipped at 0)."""
    return squared_from_cross(norm_v2, products.inner(H, wtv), H, wtw)


def squared_from_cross(norm_v2: float, cross: da.Array, H: da.Array, wtw: da.Array) -> da.Array:
    """``‖V − WH‖² = ‖V‖² − 2 Σ (WH)∘V + Σ (WᵀW)∘(HHᵀ)`` from the cross term ``cross``
    (0-d float64, clipped at 0)."""
    sq = norm_v2 - 2.0 * cross + products.inner(wtw, products.gram_cols(H))
    return da.maximum(sq, 0.0)


def squared_errors(
    norm_v2: float, H: da.Array, wtv: da.Array, wtw: da.Array, stack: Stack
) -> da.Array:
    """``‖V − W_r H_r‖²`` of each replicate of a ``stack`` (length ``R``, float64,
    clipped at 0), from the stacked ``WᵀV`` and the packed ``W_rᵀ W_r``."""
    cross = products.row_inner(H, wtv)
    grams = products.row_inner(wtw, products.gram_cols(H, stack))
    per_row = grams - 2.0 * cross
    if products.is_lazy(per_row):
        sq = per_row.map_blocks(stack.group_sums, chunks=(len(stack.ranks),), dtype=np.float64)
    else:
        sq = stack.group_sums(per_row)
    return da.maximum(sq + norm_v2, 0.0)


@dataclass(frozen=True)
class AlternatingFrobenius:
    """An alternating solver for ``½‖V − WH‖²`` on one matrix ``V``; subclasses name
    their per-block :attr:`rule`.

    Parameters
    ----------
    V : dask.array.Array
        The ``m × n`` input, chunked in tiles.
    norm_v2 : float
        ``‖V‖²``, computed once by the caller (it is part of the input statistics).
    penalty_w, penalty_h : Penalty
        Elastic-net penalties of ``W`` and ``H``; the error reported stays
        ``‖V − WH‖_F`` without them, as scikit-learn's ``reconstruction_err_``.
    hold_w : callable, optional
        See :class:`~dasknmf.solvers.base.Problem`.
    in_memory : bool
        Whether ``V``'s tiles are held in memory (persisted). Then an iteration is one
        graph with two passes over the tiles, which measured faster than one pass
        (the two threads run the same kind of product at the same time;
        docs/benchmarks.md). Out of core,
        one pass reads each tile once (:func:`one_pass`); with more than
        ``products.SPLIT_EVERY`` column tiles, two passes run as two graphs.
    """

    rule: ClassVar[Rule]
    transform_start: ClassVar[str] = "mean"

    V: da.Array
    norm_v2: float
    in_memory: bool = True
    penalty_w: Penalty = NO_PENALTY
    penalty_h: Penalty = NO_PENALTY
    stack: Stack | None = None
    hold_w: Callable[[da.Array], da.Array] | None = None

    #: Replicates can be stacked side by side (:class:`~dasknmf.kernels.stack.Stack`).
    stackable: ClassVar[bool] = True

    @classmethod
    def build(cls, problem: Problem) -> AlternatingFrobenius:
        return cls(problem.V, problem.norm2, **problem.options, hold_w=problem.hold_w)

    @property
    def reusable(self) -> bool:
        """Whether one iteration's graph can be built once and re-run with new factors
        (not when :meth:`step` runs the W update as a graph of its own)."""
        return self.in_memory or products.few_column_tiles(self.V)

    @property
    def scores_input(self) -> bool:
        """Whether :meth:`scored_step` can give the error at its input factors from
        its own pass over ``V``: out of core, in one pass, for one model."""
        return self._one_pass and self.stack is None

    @property
    def _one_pass(self) -> bool:
        return not self.in_memory and products.few_column_tiles(self.V)

    def scored_step(self, W: da.Array, H: da.Array) -> Step:
        """:meth:`step`, with the error at ``(W, H)`` (its ``input_error``) from the
        same read of ``V``; only where :attr:`scores_input`."""
        if not self.scores_input:
            raise ValueError("this solver's step cannot score its input factors")
        W, wtv, wtw, score = one_pass(self.V, W, H, self.rule, self.penalty_w, scored=True)
        H = update_h_from(H, wtv, wtw, self.rule, self.penalty_h)
        start = da.sqrt(da.maximum(score + self.norm_v2, 0.0))
        return Step(W, H, lambda: self._error_from(H, wtv, wtw), input_error=lambda: start)

    def step(self, W: da.Array, H: da.Array) -> Step:
        stack = self.stack
        if self._one_pass:
            W, wtv, wtw = one_pass(self.V, W, H, self.rule, self.penalty_w, stack)
            H = update_h_from(H, wtv, wtw, _stacked(self.rule, stack), self.penalty_h)
        else:
            W = update_w(self.V, W, H, self.rule, self.penalty_w, stack)
            if not self.in_memory:
                # Two passes in one graph would keep every tile read by the first
                # pass in memory until the second has used it: all of V. The W update
                # as its own graph bounds memory to a tile, for two reads.
                W = dask.persist(W)[0] if self.hold_w is None else self.hold_w(W)
            H, wtv, wtw = update_h(self.V, W, H, self.rule, self.penalty_h, stack)
        exact = self._exact(W, H, wtw)
        return Step(W, H, lambda: self._error_from(H, wtv, wtw), exact_error=exact)

    def _exact(self, W: da.Array, H: da.Array, wtw: da.Array) -> Callable[[], da.Array] | None:
        """The error at ``(W, H)`` without ``WᵀV``'s float32 rounding, for one model
        on a float32 ``V`` held in memory; ``None`` elsewhere (float64 is exact
        enough; out of core it would cost a read of ``V``).

        ``Σ H∘(WᵀV)`` from float32 products sums each entry over a tile's rows (tens
        of thousands of terms for a frequent column): 10⁻⁵ off, enough to move the
        stopping rule's decision (docs/benchmarks.md, "The reported error of a
        float32 fit"). ``Σ_i W_i · (V_i Hᵀ)_i`` is the same term from row sums as
        short as a row, at the price of one more product with ``V``.
        """
        if self.stack is not None or not self.in_memory or self.V.dtype != np.float32:
            return None

        def exact() -> da.Array:
            cross = products.inner(W, products.v_times_ht(self.V, H))
            return da.sqrt(squared_from_cross(self.norm_v2, cross, H, wtw))

        return exact

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        wtv = products.wt_times_v(W, self.V)
        return self._error_from(H, wtv, products.gram_rows(W, self.stack))

    def _error_from(self, H: da.Array, wtv: da.Array, wtw: da.Array) -> da.Array:
        """``‖V − WH‖_F`` (0-d), or one per replicate for a stack (length ``R``)."""
        if self.stack is None:
            return da.sqrt(squared_error(self.norm_v2, H, wtv, wtw))
        return da.sqrt(squared_errors(self.norm_v2, H, wtv, wtw, self.stack))

    def transform_w(
        self, H: da.Array, W0: da.Array, *, max_iter: int, tol: float, check_every: int
    ) -> da.Array:
        return transform_w(
            self.V,
            H,
            W0,
            max_iter=max_iter,
            tol=tol,
            check_every=check_every,
            rule=self.rule,
            penalty=self.penalty_w,
        )


# -- W with H fixed (``transform``) ---------------------------------------------------
# With H fixed the rows of W are independent, so each row block runs its own loop on
# its own ``V_i Hᵀ`` and no iteration needs the scheduler.


def solve_w_block(
    w: np.ndarray,
    vht: np.ndarray,
    hht: np.ndarray,
    norm_v2: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    check_every: int,
    rule: Rule = mu_rule,
    penalty: Penalty = NO_PENALTY,
) -> np.ndarray:
    """Updates of one row block of ``W`` with ``H`` fixed, by ``rule``.

    Stops like the full fit (:class:`~dasknmf.stopping.ToleranceRule`), on the
    block's own error.
    """
    nv2 = float(np.asarray(norm_v2).sum())

    def error(x: np.ndarray) -> float:
        sq = nv2 - 2.0 * float(inner(x, vht)) + float(inner(x.T @ x, hht))
        return math.sqrt(max(sq, 0.0))

    stopping = ToleranceRule(tol, check_every, error(w) if tol > 0 else 0.0)
    for it in range(1, max_iter + 1):
        w = rule(w, vht, hht, penalty)
        if stopping.is_check(it) and stopping.converged(error(w)):
            break
    return w


def _row_block_norm2(tile) -> np.ndarray:
    data = tile.data if is_sparse(tile) else tile
    return np.asarray([[float(array_module(data).square(data, dtype=np.float64).sum())]])


def transform_w(
    V: da.Array,
    H: da.Array,
    W0: da.Array,
    *,
    max_iter: int,
    tol: float,
    check_every: int,
    rule: Rule = mu_rule,
    penalty: Penalty = NO_PENALTY,
) -> da.Array:
    """``W`` minimising ``‖V − WH‖`` for fixed ``H``, by row-block-local updates."""
    vht = products.v_times_ht(V, H)
    hht = products.gram_cols(H)
    if not products.is_lazy(V, H, W0):
        norm2 = _row_block_norm2(V)
        return solve_w_block(
            W0,
            vht,
            hht,
            norm2,
            max_iter=max_iter,
            tol=tol,
            check_every=check_every,
            rule=rule,
            penalty=penalty,
        )
    norms = da.map_blocks(
        _row_block_norm2, V, dtype=np.float64, chunks=(1, 1), meta=np.empty((0, 0))
    ).sum(axis=1, keepdims=True)
    return da.blockwise(
        solve_w_block, "ia", W0, "ia", vht, "ia", hht, "bc", norms, "iz",
        dtype=W0.dtype, concatenate=True, align_arrays=False, max_iter=max_iter, tol=tol,
        check_every=check_every, rule=rule, penalty=penalty,
    )  # fmt: skip
