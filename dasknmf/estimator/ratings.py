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
from dasknmf.estimator.placement import components_like, components_on_host
from dasknmf.estimator.preparation import as_tiled
from dasknmf.recommend import top_items, top_items_by_row_block
from dasknmf.resources import in_task_threads
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
    """:meth:`predict`, :meth:`rmse`, :meth:`score`, :meth:`recommend` and
    :meth:`recommend_all` of a fitted ``missing='ignore'`` model (``W_``,
    ``components_``, ``rating_range_``, ``clip``; ``_masked`` and ``_ratings``, the
    training matrix, come from the estimator)."""

    @available_if(lambda self: self._masked)
    def predict(self, rows, cols=None):
        """Predicted entries ``(W H)[rows[p], cols[p]]`` of the training matrix.

        For ratings these are the predicted ratings of the given (user, item) pairs,
        observed or not, clipped to the range of the ratings seen by :meth:`fit`
        (:attr:`rating_range_`) unless ``clip=False``. Available with
        ``missing='ignore'`` (to predict from a complete matrix, fit it that way too:
        with nothing missing the updates are the plain ones); scikit-learn's own
        ``predict(X)`` protocol does not apply to a transformer.

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
        predictions = masked.predict(
            np.asarray(w_rows), components_on_host(self.components_, cols)
        )
        bounds = self._clip_bounds()
        return predictions if bounds is None else np.clip(predictions, *bounds)

    @available_if(lambda self: self._masked)
    @in_task_threads
    def rmse(self, X) -> float:
        """Root-mean-square error of :meth:`predict` on the observed entries of ``X``
        (clipped predictions unless ``clip=False``).

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
        V = as_tiled(self, X, reset=False)
        if V.shape[0] != self.W_.shape[0]:
            raise ValueError(
                f"X has {V.shape[0]} rows, but NMF was fitted on {self.W_.shape[0]}: rmse "
                "needs entries of the training matrix's shape."
            )
        W = devices.to_host(self.W_)
        if isinstance(V, da.Array) and V.numblocks != (1, 1):
            W = (
                W.rechunk((V.chunks[0], -1))
                if isinstance(W, da.Array)
                else (da.from_array(W, chunks=(V.chunks[0], -1)))
            )
            H = components_like(self.components_, V)
        else:
            H = components_on_host(self.components_).astype(V.dtype, copy=False)
            V, W = dask.compute(V, W)
        bounds = self._clip_bounds()
        if bounds is None:
            sums = np.asarray(dask.compute(masked.observed_sums(V, W, H, 2.0))[0])[1:]
        else:
            sums = np.asarray(dask.compute(masked.clipped_sums(V, W, H, *bounds))[0])
        if sums[0] == 0:
            raise InvalidInputError("rmse: X has no observed entries.")
        return float(np.sqrt(sums[1] / sums[0]))

    @available_if(lambda self: self._masked)
    def score(self, X, y=None) -> float:
        """Negative :meth:`rmse` on ``X`` (greater is better, as scikit-learn's
        model selection expects)."""
        return -self.rmse(X)

    @available_if(lambda self: self._masked)
    def recommend(self, user, n: int = 10, *, exclude_seen: bool = True):
        """The ``n`` items with the highest predicted rating for one user.

        Parameters
        ----------
        user : int
            Row index of the user in the matrix given to :meth:`fit`.
        n : int, default=10
            Items to return, at most ``n_features_in_``.
        exclude_seen : bool, default=True
            Leave out the items the user rated in the training matrix (its stored
            entries, or non-NaN entries of a dense one; validation entries included).

        Returns
        -------
        items : ndarray of int64, shape (n,)
            Column indices, best first (ties by index); ``-1`` where fewer than ``n``
            items are left.
        scores : ndarray of float64, shape (n,)
            Their predicted ratings (clipped unless ``clip=False``); NaN for ``-1``.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp, dasknmf
        >>> X = sp.random(50, 30, density=0.3, format="csr", random_state=0)
        >>> X.data = 1 + 4 * X.data  # ratings on a 1-5 scale
        >>> model = dasknmf.NMF(3, missing="ignore", alpha_weighted=0.05, random_state=0)
        >>> model = model.fit(X)
        >>> items, scores = model.recommend(0, n=5)
        >>> items.shape, bool(np.isin(items, X[[0]].indices).any())
        ((5,), False)
        """
        check_is_fitted(self, "W_")
        m = self.W_.shape[0]
        if (
            isinstance(user, bool)
            or not isinstance(user, (int, np.integer))
            or not (0 <= user < m)
        ):
            raise InvalidParameterError(
                f"recommend: user must be a row index in [0, {m}); got {user!r}."
            )
        n = self._check_n(n)
        row = self._ratings[int(user) : int(user) + 1] if exclude_seen else None
        if isinstance(row, da.Array):
            (row,) = dask.compute(row)
        W = devices.to_host(self.W_)
        w = W[int(user) : int(user) + 1]
        w = w.compute() if isinstance(w, da.Array) else np.asarray(w)
        H = components_on_host(self.components_)  # every item is scored
        items, scores = top_items(
            w,
            [] if row is None else [row],
            H,
            [] if row is None else [0],
            n,
            exclude_seen=exclude_seen,
            bounds=self._clip_bounds(),
        )
        return items[0], scores[0]

    @available_if(lambda self: self._masked)
    @in_task_threads
    def recommend_all(self, n: int = 10, *, exclude_seen: bool = True):
        """:meth:`recommend` for every user, one task per row block of the training
        matrix: each block's scores are formed a batch of rows at a time, so the
        ``m × n_features`` matrix of predictions never is.

        Returns
        -------
        items : ndarray of int64, shape (n_samples, n)
        scores : ndarray of float64, shape (n_samples, n)
            Row ``u`` is ``recommend(u, n, exclude_seen=exclude_seen)``.
        """
        check_is_fitted(self, "W_")
        n = self._check_n(n)
        W = devices.to_host(self.W_)
        H = components_on_host(self.components_)  # every task scores every item
        V = self._ratings
        if not isinstance(V, da.Array) and isinstance(W, da.Array):
            (W,) = dask.compute(W)
        return top_items_by_row_block(
            V, W, H, n, exclude_seen=exclude_seen, bounds=self._clip_bounds()
        )

    def _check_n(self, n) -> int:
        items = self.components_.shape[1]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= items:
            raise InvalidParameterError(
                f"recommend: n must be an int in [1, {items}] (the number of items); got {n!r}."
            )
        return int(n)

    def _clip_bounds(self) -> tuple[float, float] | None:
        """The range predictions are clipped to, or ``None`` (``clip=False``, or no
        finite rating seen)."""
        low, high = getattr(self, "rating_range_", (np.nan, np.nan))
        if not self.clip or not (np.isfinite(low) and np.isfinite(high)):
            return None
        return float(low), float(high)

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
