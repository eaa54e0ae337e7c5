"""Held-out errors of a rank: bi-cross-validation for complete matrices (Owen & Perry
2009), held-out entries for ratings; block by block over tiles.

The error of a factorisation on the data it was fitted to falls with every component
added, so it cannot choose ``k``. Holding out random *entries* does not work for an
ordinary (complete) matrix either: its zeros are data as much as its non-zeros, and an
``m × n`` mask cannot be formed at this scale. Bi-cross-validation holds out a random
set of rows ``I`` and of columns ``J`` instead, and splits ``V`` into four blocks::

    V = [ V_IJ   V_IJ' ]        fit        W_D, H_D  on  D = V_I'J'
        [ V_I'J  V_I'J']        solve      W_I  from V_IJ'  with H_D fixed
                                solve      H_J  from V_I'J  with W_D fixed
                                test       ‖V_IJ − W_I H_J‖_F

Each solve is a non-negative least-squares problem with one factor fixed (convex, so
its answer does not depend on the solver that fitted ``D``); it runs row block by row
block (or column block by column block) without the scheduler, by coordinate descent
to a fixed accuracy. ``V_IJ`` is never formed densely: its error comes from
``W_Iᵀ V_IJ`` and two packed Gram matrices, like every error of the fit.

With ``missing='ignore'`` (ratings) only the observed entries are data, and a random
share of them is held out instead (:class:`HeldOutEntries`, the split of
:func:`dasknmf.validation.split`): each replicate is fitted to the rest, and its test
error is the RMSE of its predictions at the held-out entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import dask
import dask.array as da
import numpy as np

from dasknmf import products, validation
from dasknmf.kernels.frobenius import hals_rule
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.kernels.stack import Stack, StackedRule
from dasknmf.solvers.frobenius import squared_errors
from dasknmf.solvers.masked import observed_sums
from dasknmf.sweep.loop import chunked

#: Coordinate-descent sweeps at most per held-out solve, and the relative change of
#: the solution (largest entry moved / largest entry) below which it stops.
SOLVE_SWEEPS, SOLVE_TOL = 500, 1e-6


@dataclass(frozen=True)
class BiCrossValidation:
    """A random choice of held-out rows ``I`` and columns ``J`` of an ``m × n`` input.

    Attributes
    ----------
    rows, cols : numpy.ndarray
        Held-out row and column indices (sorted).
    m, n : int
        The input's shape.

    Examples
    --------
    >>> cv = BiCrossValidation.draw(100, 40, fraction=0.1, seed=0)
    >>> len(cv.rows), len(cv.cols), len(cv.train_rows)
    (10, 4, 90)
    """

    rows: np.ndarray
    cols: np.ndarray
    m: int
    n: int

    @classmethod
    def draw(cls, m: int, n: int, *, fraction: float, seed: int) -> BiCrossValidation:
        """Hold out ``round(fraction · m)`` rows and ``round(fraction · n)`` columns
        (at least one of each), drawn from ``seed``."""
        rng = np.random.default_rng([seed, 0x5EED])
        count_rows = max(1, round(fraction * m))
        count_cols = max(1, round(fraction * n))
        rows = np.sort(rng.choice(m, count_rows, replace=False))
        cols = np.sort(rng.choice(n, count_cols, replace=False))
        return cls(rows, cols, m, n)

    @property
    def train_rows(self) -> np.ndarray:
        """Rows kept for the fit (``I'``)."""
        return np.setdiff1d(np.arange(self.m), self.rows, assume_unique=True)

    @property
    def train_cols(self) -> np.ndarray:
        """Columns kept for the fit (``J'``)."""
        return np.setdiff1d(np.arange(self.n), self.cols, assume_unique=True)

    def block(self, V, rows: np.ndarray, cols: np.ndarray):
        """``V[rows][:, cols]``, lazily for a tiled ``V`` (each tile sliced as read)."""
        return V[rows][:, cols]

    def train(self, V):
        """The block ``D = V_I'J'`` the replicates are fitted to."""
        return self.block(V, self.train_rows, self.train_cols)

    def test_errors(self, V, W, H, stack: Stack) -> np.ndarray:
        """``‖V_IJ − W_I H_J‖_F`` for each replicate of ``stack``, where ``W``
        (``m' × Σk``) and ``H`` (``Σk × n'``) are the stacked factors fitted to
        :meth:`train`; also returns the full-width ``H`` of each replicate.

        Returns
        -------
        errors : numpy.ndarray
            One per replicate (float64).
        H_full : numpy.ndarray
            ``Σk × n``: the fitted ``H`` on ``J'`` and the solved ``H_J`` on ``J``.
        """
        W_I = solve_rows(self.block(V, self.rows, self.train_cols), H, stack)
        H_J = solve_cols(self.block(V, self.train_rows, self.cols), W, stack)
        test = self.block(V, self.rows, self.cols)
        if isinstance(test, da.Array):
            W_I = W_I.rechunk((test.chunks[0], -1))
            H_J = H_J.rechunk((-1, test.chunks[1]))
        wtv, wtw = products.wt_times_v(W_I, test), products.gram_rows(W_I, stack)
        sq = squared_errors(_norm2(test), H_J, wtv, wtw, stack)
        errors, H_J, H = dask.compute(sq, H_J, H)
        H_full = np.empty((stack.total, self.n), dtype=np.asarray(H).dtype)
        H_full[:, self.train_cols] = H
        H_full[:, self.cols] = H_J
        return np.sqrt(np.asarray(errors, dtype=np.float64)), H_full


@dataclass(frozen=True)
class HeldOutEntries:
    """A random share ``fraction`` of the observed entries held out (ratings).

    The entries are chosen by a hash of their position and ``seed``
    (:func:`dasknmf.validation.split`): the same whatever the tiling.
    """

    fraction: float
    seed: int

    def train(self, V):
        """``V`` without the held-out entries (same shape and tiling)."""
        return validation.split(V, self.fraction, self.seed)[0]

    def test_errors(self, V, W, H, stack: Stack) -> tuple[np.ndarray, np.ndarray]:
        """The RMSE of each replicate's predictions at the held-out entries, and the
        stacked ``H`` (computed): the interface of
        :meth:`BiCrossValidation.test_errors`."""
        test = validation.split(V, self.fraction, self.seed)[1]
        sums = [observed_sums(test, W[:, s:e], H[s:e], 2.0) for s, e in stack.bounds]
        sums, H = dask.compute(sums, H)
        errors = [math.sqrt(float(t[2]) / float(t[1])) if t[1] else math.nan for t in sums]
        return np.asarray(errors), np.asarray(H)


def _norm2(V) -> da.Array:
    """``‖V‖²`` (0-d float64) of a sparse or dense, tiled or in-memory matrix."""
    if not isinstance(V, da.Array):
        data = V.data if hasattr(V, "tocsr") else V
        return np.asarray(float(np.square(data, dtype=np.float64).sum()))
    return da.map_blocks(
        _norm2_partial, V, dtype=np.float64, chunks=(1, 1), meta=np.empty((0, 0))
    ).sum()


def _norm2_partial(tile) -> np.ndarray:
    return np.asarray(_norm2(tile)).reshape(1, 1)


def nnls_rule(x, xht, g, penalty: Penalty = NO_PENALTY):
    """``argmin_{x ≥ 0} ½‖x‖²_g − ⟨x, xht⟩`` for each row: coordinate-descent sweeps
    (:func:`~dasknmf.kernels.frobenius.hals_rule`) from ``x`` until the largest change
    is below :data:`SOLVE_TOL` of the largest entry, at most :data:`SOLVE_SWEEPS`."""
    for _ in range(SOLVE_SWEEPS):
        new = hals_rule(x, xht, g, penalty)
        change = float(np.abs(new - x).max(initial=0.0))
        x = new
        if change <= SOLVE_TOL * float(np.abs(x).max(initial=0.0)):
            break
    return x


def _solve_block(stack: Stack, x, xht, g):
    return StackedRule(nnls_rule, stack)(x, xht, g, NO_PENALTY)


def _solve_block_t(stack: Stack, x, xht, g):
    # A column block of H, handled transposed (its columns are independent rows).
    return _solve_block(stack, x.T, xht.T, g).T


def solve_rows(V, H, stack: Stack):
    """``W ≥ 0`` minimising ``‖V − W H_r‖`` per replicate, for ``V`` (``p × n'``) and
    the stacked ``H`` (``Σk × n'``); ``p × Σk``, row block by row block."""
    if isinstance(V, da.Array):
        H = chunked(H, (-1, V.chunks[1]))
    vht = products.v_times_ht(V, H)
    hht = products.gram_cols(H, stack)
    start = da.zeros_like(vht) if isinstance(vht, da.Array) else np.zeros_like(vht)
    return products.map_factor_blocks(partial(_solve_block, stack), start, vht, hht)


def solve_cols(V, W, stack: Stack):
    """``H ≥ 0`` minimising ``‖V − W_r H‖`` per replicate, for ``V`` (``m' × q``) and
    the stacked ``W`` (``m' × Σk``); ``Σk × q``, column block by column block."""
    if isinstance(V, da.Array):
        W = chunked(W, (V.chunks[0], -1))
    wtv = products.wt_times_v(W, V)
    wtw = products.gram_rows(W, stack)
    start = da.zeros_like(wtv) if isinstance(wtv, da.Array) else np.zeros_like(wtv)
    return products.map_factor_blocks(partial(_solve_block_t, stack), start, wtv, wtw)
