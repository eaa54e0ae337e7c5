"""Multiplicative updates on observed entries only: NMF with missing values.

For recommender data (user × item ratings) only the stored entries of ``V`` are
known; the rest are to be predicted, not fitted as zeros. The loss is the
β-divergence over the observed set ``Ω`` (see :mod:`dasknmf.kernels.masked`), and
each update is the β-MU rule with every full-matrix product restricted to ``Ω``: the
traversal, the fused single pass out of core and the H update are those of
:class:`~dasknmf.solvers.beta.BetaMU`; only the per-tile kernels differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import ClassVar

import dask.array as da
import numpy as np

from dasknmf import products
from dasknmf.kernels.masked import (
    clipped_squares,
    divergence_terms,
    h_terms,
    predict_pairs,
    row_pass,
    update_rows,
)
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.solvers.beta import BetaMU, solve_w_rows


def _tile_terms(beta, w, tile, h):
    return divergence_terms(w, h, tile, beta)


def observed_sums(V, W, H, beta: float):
    """``[Σ_Ω d_β(V | WH), |Ω|, Σ_Ω (V − WH)²]`` over all tiles (float64, lazy when
    the inputs are)."""
    return products.tile_sums(partial(_tile_terms, beta), W, V, H, 3)


@dataclass(frozen=True)
class MaskedMU(BetaMU):
    """β-divergence multiplicative updates over the observed entries of ``V``.

    Parameters
    ----------
    V : dask.array.Array
        The tiled input: stored entries of sparse tiles (explicit zeros included) and
        non-NaN entries of dense tiles are observed.
    beta : float
        The divergence's β (2: squared error, 1: KL, 0: Itakura–Saito).
    in_memory : bool
        ``V`` persisted: two passes per iteration; else one.
    penalty_w, penalty_h : Penalty
        Elastic-net penalties, added to the denominators as for the unmasked rules.
    """

    tile_kernels: ClassVar = SimpleNamespace(
        update_rows=update_rows, h_terms=h_terms, row_pass=row_pass
    )

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        """``sqrt(2 Σ_Ω d_β)``: ``‖M ∘ (V − WH)‖_F`` for β = 2."""
        sums = observed_sums(self.V, W, H, self.beta)
        return da.sqrt(2 * da.maximum(sums[0], 0.0))

    def transform_w(
        self, H: da.Array, W0: da.Array, *, max_iter: int, tol: float, check_every: int
    ) -> da.Array:
        options = dict(max_iter=max_iter, tol=tol, check_every=check_every)
        return transform_w(self.V, H, W0, beta=self.beta, penalty=self.penalty_w, **options)


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
    """``W`` minimising the observed-entry divergence for fixed ``H``, by row block."""

    def error(w, tiles, hs):
        div = sum(divergence_terms(w, h, t, beta)[0, 0] for t, h in zip(tiles, hs, strict=True))
        return float(np.sqrt(2 * max(div, 0.0)))

    update = partial(update_rows, beta, penalty)
    options = dict(max_iter=max_iter, tol=tol, check_every=check_every)
    return solve_w_rows(V, H, W0, update, error, **options)


def _clipped_terms(low, high, w, tile, h):
    return clipped_squares(w, h, tile, low, high)


def clipped_sums(V, W, H, low: float, high: float):
    """``[|Ω|, Σ_Ω (V − clip(WH, low, high))²]`` over all tiles (float64, lazy when
    the inputs are): the squared error of a ratings model's clipped predictions."""
    return products.tile_sums(partial(_clipped_terms, low, high), W, V, H, 2)


def predict(w_rows, h_cols):
    """Predictions ``Σ_a W[r, a] H[a, c]`` at aligned pairs: ``w_rows`` (``p × k``)
    holds the pairs' rows of ``W``, ``h_cols`` (``k × p``) their columns of ``H``."""
    return predict_pairs(w_rows, h_cols)
