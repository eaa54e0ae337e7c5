"""Ratings: predictions of single entries, and their error on held-out entries.

Available on :class:`~dasknmf.estimator.nmf.NMF` with ``missing='ignore'``, the
recommender setting: ``W`` and ``H`` are fitted on the observed entries only, and the
others are predicted as ``W_i · H_j``.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from dasknmf import devices, inputs
from dasknmf.errors import InvalidInputError, InvalidParameterError, warn_user
from dasknmf.resources import blas_guarded
from dasknmf.solvers import Solver, masked

__all__ = ["RatingsMixin", "warn_underdetermined"]


def warn_underdetermined(V, k: int, solver: Solver) -> None:
    """Warn when a least-squares solver meets rows or columns with fewer observed
    entries than ``k`` and no L2 penalty: their problems have no unique solution, and
    which one the solver returns is arbitrary (its predictions can be far off)."""
    if not getattr(solver, "weighted_lambda", False):
        return
    sides = {"rows": solver.penalty_w, "columns": solver.penalty_h}
    sides = [name for name, p in sides.items() if p.l2 == 0 and p.l2_weighted == 0]
    if not sides:
        return
    counts = dict(zip(("rows", "columns"), inputs.observed_counts(V), strict=True))
    few = {name: int(((counts[name] > 0) & (counts[name] < k)).sum()) for name in sides}
    sides = [f"{n} {name}" for name, n in few.items() if n]
    if sides:
        warn_user(
            f"X has {' and '.join(sides)} with fewer observed entries than "
            f"n_components={k}: without an L2 penalty their least-squares problems have "
            "no unique solution and their predictions are arbitrary. Set alpha_weighted "
            "(e.g. 0.03 for ratings on a 1-5 scale) or alpha_W.",
            UserWarning,
        )


class RatingsMixin:
    """:meth:`predict`, :meth:`rmse` and :meth:`score` of a fitted ``missing='ignore'``
    model (``W_``, ``components_``; ``_masked`` and ``_as_tiled`` come from the
    estimator)."""

    @available_if(lambda self: self._masked)
    def predict(self, rows, cols=None):
        """Predicted entries ``(W H)[rows[p], cols[p]]`` of the training matrix.

        For ratings these are the predicted ratings of the given (user, item) pairs,
        observed or not. Available with ``missing='ignore'`` (to predict from a
        complete matrix, fit it that way too: with nothing missing the updates are
        the plain ones); scikit-learn's own ``predict(X)`` protocol does not apply to
        a transformer.

        Parameters
        ----------
        rows, cols : array-like of int, same length
            Row and column indices into the matrix given to :meth:`fit`. With
            ``cols`` omitted, ``rows`` is a ``(p, 2)`` array of ``(row, col)`` pairs.

        Returns
        -------
        ndarray of shape (len(rows),)
            One prediction per pair, computed from the pairs' rows of ``W`` and
            columns of ``H`` only.
        """
        check_is_fitted(self, "W_")
        if cols is None:
            pairs = np.asarray(rows)
            if pairs.ndim != 2 or pairs.shape[1] != 2:
                raise InvalidParameterError(
                    "predict: give rows and cols, or one array of (row, col) pairs of shape "
                    f"(p, 2); got an array of shape {pairs.shape}."
                )
            rows, cols = pairs[:, 0], pairs[:, 1]
        rows, cols = self._check_pairs(rows, cols)
        W = devices.to_host(self.W_)
        w_rows = W[rows].compute() if isinstance(W, da.Array) else W[rows]
        H = devices.block_to_host(self.components_)
        return masked.predict(np.asarray(w_rows), H[:, cols])

    @available_if(lambda self: self._masked)
    @blas_guarded
    def rmse(self, X) -> float:
        """Root-mean-square error of :meth:`predict` on the observed entries of ``X``.

        Parameters
        ----------
        X : matrix, store path, dask array or (rows, cols, values)
            Entries of the training matrix's shape, typically held out of the fit:
            a sparse matrix, store or dask array (its stored entries, zeros included)
            or a dense array (its non-NaN entries); or three aligned arrays.

        Returns
        -------
        float
            ``sqrt(mean((X_ij − (WH)_ij)²))`` over the observed ``(i, j)``.
        """
        check_is_fitted(self, "W_")
        if isinstance(X, tuple):
            if len(X) != 3:
                raise InvalidParameterError(
                    f"rmse expects a matrix or a (rows, cols, values) triple; got a tuple of "
                    f"{len(X)} items."
                )
            rows, cols, values = X
            values = np.asarray(values, dtype=np.float64).ravel()
            pred = self.predict(rows, cols)
            if values.shape != pred.shape:
                raise InvalidParameterError(
                    f"rmse: {values.size} values for {pred.size} (row, col) pairs."
                )
            if values.size == 0:
                raise InvalidParameterError("rmse: no (row, col, value) entries given.")
            return float(np.sqrt(np.mean((values - pred) ** 2)))
        V = self._as_tiled(X, reset=False)
        if V.shape[0] != self.W_.shape[0]:
            raise ValueError(
                f"X has {V.shape[0]} rows, but NMF was fitted on {self.W_.shape[0]}: rmse "
                "needs entries of the training matrix's shape."
            )
        W = devices.to_host(self.W_)
        H = devices.block_to_host(self.components_).astype(V.dtype, copy=False)
        if isinstance(V, da.Array) and V.numblocks != (1, 1):
            W = (
                W.rechunk((V.chunks[0], -1))
                if isinstance(W, da.Array)
                else (da.from_array(W, chunks=(V.chunks[0], -1)))
            )
            H = da.from_array(H, chunks=(-1, V.chunks[1]))
        else:
            V, W = dask.compute(V, W)
        sums = np.asarray(dask.compute(masked.observed_sums(V, W, H, 2.0))[0])
        if sums[1] == 0:
            raise InvalidInputError("rmse: X has no observed entries.")
        return float(np.sqrt(sums[2] / sums[1]))

    @available_if(lambda self: self._masked)
    def score(self, X, y=None) -> float:
        """Negative :meth:`rmse` on ``X`` (greater is better, as scikit-learn's
        model selection expects)."""
        return -self.rmse(X)

    def _check_pairs(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Validated integer index arrays for :meth:`predict`."""
        m, n = self.W_.shape[0], self.components_.shape[1]
        out = []
        for name, idx, size in (("rows", rows, m), ("cols", cols, n)):
            arr = np.asarray(idx)
            if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
                raise InvalidParameterError(
                    f"predict: {name} must be a 1-D array of integer indices; got "
                    f"{arr.dtype} of shape {arr.shape}."
                )
            bad = (arr < 0) | (arr >= size)
            if bad.any():
                raise InvalidParameterError(
                    f"predict: {name} index {int(arr[bad][0])} is out of range [0, {size}) "
                    f"({int(bad.sum())} such indices)."
                )
            out.append(arr.astype(np.intp, copy=False))
        if out[0].shape != out[1].shape:
            raise InvalidParameterError(
                f"predict: rows and cols must have the same length; got {out[0].size} and "
                f"{out[1].size}."
            )
        return out[0], out[1]
