"""Validation entries: observed entries set aside from a fit to stop it on what matters.

With ``NMF(missing='ignore', validation=f)`` a fraction ``f`` of the observed entries
never enters the fit (:func:`split`): each entry's side is a hash of its position and
the seed (:func:`dasknmf.random.uniform_at`), so the split does not depend on the
tiling, and no tile is ever formed twice in memory. After every iteration
:class:`EarlyStopping` computes the RMSE on those entries (they are few and kept in
memory: a sweep's hundredth in work) and stops the fit when it has not improved for
:data:`PATIENCE` iterations, keeping the factors of the best one. The training loop
itself is not touched: the callback raises :class:`ValidationStop`, as LightGBM's
early stopping does, and the estimator takes the best factors from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from dasknmf import devices, products
from dasknmf.fit_state import IterationInfo
from dasknmf.kernels.tiles import is_sparse
from dasknmf.random import STREAM_VALIDATION, uniform_at
from dasknmf.solvers.masked import clipped_sums, observed_sums

__all__ = [
    "PATIENCE",
    "EarlyStopping",
    "ValidationStop",
    "observed_count",
    "persist",
    "split",
]

#: Iterations without an improvement of the validation RMSE (relative ``tol``) after
#: which the fit stops.
PATIENCE = 3


def split(V: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """``(train, validation)``: ``V``'s observed entries split by a hash of their
    position and ``seed``, each a matrix of ``V``'s shape and tiling (sparse tiles stay
    sparse with their explicit zeros; a dense tile's entries of the other side become
    NaN, i.e. missing). Lazy for a dask ``V``.

    Examples
    --------
    >>> X = sp.random(200, 100, density=0.2, format="csr", random_state=0)
    >>> train, valid = split(X, 0.1, seed=0)
    >>> train.nnz + valid.nnz == X.nnz, round(valid.nnz / X.nnz, 2)
    (True, 0.1)
    """
    if not products.is_lazy(V):
        return _split_tile(V, 0, 0, fraction, seed)
    parts = []
    for side in (0, 1):
        parts.append(V.map_blocks(_split_block, fraction, seed, side, dtype=V.dtype, meta=V._meta))
    return parts[0], parts[1]


def _split_block(tile, fraction, seed, side, block_info=None):
    (r0, _), (c0, _) = block_info[0]["array-location"]
    return _split_tile(tile, r0, c0, fraction, seed)[side]


def _split_tile(tile, r0: int, c0: int, fraction: float, seed: int):
    """The two sides of one tile whose first entry is ``(r0, c0)`` of the matrix."""
    tile = devices.block_to_host(tile)
    if is_sparse(tile):
        coo = sp.coo_matrix(tile)
        held = uniform_at(coo.row + r0, coo.col + c0, seed, STREAM_VALIDATION) < fraction
        return tuple(_csr(coo, keep) for keep in (~held, held))
    tile = np.asarray(tile)
    rows, cols = np.indices(tile.shape)
    held = uniform_at(rows + r0, cols + c0, seed, STREAM_VALIDATION) < fraction
    return np.where(held, np.nan, tile), np.where(held, tile, np.nan)


def _csr(coo: sp.coo_matrix, keep: np.ndarray) -> sp.csr_matrix:
    # Built from sorted COO without summing or dropping zeros: a stored zero is data.
    rows, cols, data = coo.row[keep], coo.col[keep], coo.data[keep]
    order = np.lexsort((cols, rows))
    indptr = np.zeros(coo.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=coo.shape[0]), out=indptr[1:])
    return sp.csr_matrix((data[order], cols[order], indptr), shape=coo.shape)


def observed_count(V: Any) -> int:
    """The number of observed entries of ``V`` (computed)."""
    if not products.is_lazy(V):
        return int(V.nnz) if is_sparse(V) else int(np.count_nonzero(~np.isnan(V)))
    counts = V.map_blocks(
        lambda t: np.full((1, 1), observed_count(devices.block_to_host(t)), dtype=np.int64),
        chunks=((1,) * V.numblocks[0], (1,) * V.numblocks[1]),
        dtype=np.int64,
        meta=np.empty((0, 0), dtype=np.int64),
    )
    return int(counts.sum().compute())


class ValidationStop(Exception):
    """Raised by :class:`EarlyStopping` to end a fit whose validation RMSE stopped
    improving (caught by the estimator, never seen by users)."""


@dataclass
class EarlyStopping:
    """A fit-loop callback: the RMSE on the validation entries after every iteration;
    raises :class:`ValidationStop` once it has not fallen below ``best · (1 − tol)``
    for :data:`PATIENCE` iterations in a row.

    Parameters
    ----------
    V : matrix or dask.array.Array
        The validation entries (:func:`split`), tiled like the training matrix and
        best persisted.
    count : int
        How many there are (> 0).
    tol : float
        Relative improvement that counts; 0: any decrease.
    bounds : (float, float) or None
        Predictions are clipped to this range before the RMSE (the estimator's
        ``clip``); ``None``: not clipped.
    patience : int
        Iterations without one before stopping.

    Attributes
    ----------
    curve : list of (int, float)
        ``(iteration, validation RMSE)`` of every iteration seen.
    best : IterationInfo or None
        The iteration with the lowest validation RMSE (its factors included).
    """

    V: Any
    count: int
    tol: float
    bounds: tuple[float, float] | None = None
    patience: int = PATIENCE
    curve: list[tuple[int, float]] = field(default_factory=list)
    best: IterationInfo | None = None
    best_rmse: float = math.inf
    last: IterationInfo | None = None
    _reference: float = field(default=math.inf, repr=False)
    _waited: int = field(default=0, repr=False)

    def rmse(self, W: Any, H: Any) -> float:
        """The RMSE of ``W H`` on the validation entries."""
        W, H = devices.to_host(W), devices.to_host(H)
        if self.bounds is None:
            sums = observed_sums(self.V, W, H, 2.0)[2]
        else:
            sums = clipped_sums(self.V, W, H, *self.bounds)[1]
        (total,) = dask.compute(sums)
        return float(np.sqrt(max(float(total), 0.0) / self.count))

    def __call__(self, info: IterationInfo) -> None:
        rmse = self.rmse(info.W, info.H)
        self.curve.append((info.iteration, rmse))
        self.last = info
        if rmse < self.best_rmse:
            self.best, self.best_rmse = info, rmse
        if rmse < self._reference * (1 - self.tol):
            self._reference, self._waited = rmse, 0
            return
        self._waited += 1
        if self._waited >= self.patience:
            raise ValidationStop(
                f"validation RMSE {rmse:.6g} has not improved on {self._reference:.6g} "
                f"for {self.patience} iterations"
            )


def persist(V: Any) -> Any:
    """``V`` computed into memory (a dask array stays one, persisted)."""
    if isinstance(V, da.Array):
        (V,) = dask.persist(V)
    return V
